"""The AWS twin, and the twin machinery it stands on, against real valkey-server and real Terraform.

Machinery: fleets shaped like resources in a twin world (TLS from the world CA, users, parameters, on the
resource's own port), outliving the process that started them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import valkey
from valkey.cluster import ValkeyCluster

from reproducer.offline import offline_provider
from reproducer.run.terraform import PlanResult, Terraform, TerraformError, Var
from reproducer.twins import aws, install_twins, running_processes, stop_all, trusted_ca
from reproducer.twins import valkey as twin_valkey
from reproducer.twins.base import Change, TwinError, TwinWorld
from reproducer.twins.mirror import world_of
from tests.golden.regen import rendered

TYPE = "test_cache"
PASSWORD = "twin-user-password-1234"


@pytest.fixture
def world(tmp_path):
    world = TwinWorld(tmp_path / "world")
    yield world
    twin_valkey.stop_all(world)


def test_a_replicated_resource_with_tls_users_and_parameters_on_its_port(world):
    shape = twin_valkey.ValkeyShape(
        replicas=1,
        tls=True,
        port=6379,
        users=(
            twin_valkey.TwinUser.with_passwords("default", "on ~* &* +@all", [PASSWORD]),
            twin_valkey.TwinUser.with_passwords("app", "on ~app:* +@all", ["an-old-password-5678", PASSWORD]),
        ),
        parameters=(("maxmemory-policy", "allkeys-lru"), ("cluster-enabled", "no")),
    )
    nodes = twin_valkey.start(world, TYPE, "one", shape)
    assert [(n.role, n.port) for n in nodes] == [("primary", 6379), ("replica", 6379)]
    assert len({n.host for n in nodes}) == 2 and all(n.host.startswith("127.") for n in nodes)
    tls = {"ssl": True, "ssl_ca_certs": str(world.root / "ca.pem"), "ssl_cert_reqs": "required"}
    with valkey.Valkey(host=nodes[0].host, port=6379, username="app", password=PASSWORD, **tls) as app:
        assert app.set("app:1", "x")
        with pytest.raises(valkey.exceptions.NoPermissionError):
            app.set("other", "x")
        assert app.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    with pytest.raises(valkey.exceptions.AuthenticationError):
        valkey.Valkey(host=nodes[0].host, port=6379, **tls).ping()
    with pytest.raises(TwinError, match="already has a running Valkey"):
        twin_valkey.start(world, TYPE, "one", shape)
    fleet = twin_valkey.fleet_of(world, TYPE, "one")
    with pytest.raises(TwinError, match="reserved by the twin"):
        twin_valkey.apply_users(fleet, [twin_valkey.TwinUser("reproducer-sandbox-admin", "on ~* +@all")])
    twin_valkey.stop(world, TYPE, "one")
    assert twin_valkey.nodes(world, TYPE, "one") is None
    assert twin_valkey.running_pids(world) == []


def test_a_refused_parameter_is_the_clouds_error_and_leaves_nothing_running(world):
    shape = twin_valkey.ValkeyShape(parameters=(("maxmemory-policy", "sometimes"),))
    with pytest.raises(TwinError, match="InvalidParameterValue: maxmemory-policy"):
        twin_valkey.start(world, TYPE, "bad", shape)
    assert twin_valkey.running_pids(world) == []


def test_a_fleet_outlives_the_process_that_started_it_and_stop_all_ends_it(tmp_path):
    root = tmp_path / "twins"
    install_twins(root, ["aws"])
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from reproducer.twins import valkey
        from reproducer.twins.mirror import world_of
        valkey.start(world_of(Path({str(root)!r})), {TYPE!r}, "detached", valkey.ValkeyShape())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    try:
        nodes = twin_valkey.nodes(world_of(root), TYPE, "detached")
        assert nodes is not None and len(nodes) == 1
        assert valkey.Valkey(host=nodes[0].host, port=nodes[0].port).ping()
        assert len(running_processes(root)) == 1
    finally:
        stop_all(root)
    assert running_processes(root) == []


# ---- the AWS twin under real Terraform ----------------------------------------------------------------------------

PASSWORDS = {
    "analytics": "analytics-password-0001",
    "app": "app-password-00000000001",
    "default": "default-password-0000001",
}
RG = "aws_elasticache_replication_group"


def _write(workdir: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = workdir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return workdir


def _rendered_terraform(scenario: str) -> dict[str, str]:
    """The aws target's Terraform for a golden scenario, rendered now (not the committed golden copy)."""
    prefix = "terraform/"
    return {k.removeprefix(prefix): v for k, v in rendered("aws", scenario).items() if k.startswith(prefix)}


@dataclass
class Applied:
    """The happy path, applied once for the module: the twin root, the Terraform runner, outputs, the plan."""

    root: Path
    tf: Terraform
    variables: list[Var]
    outputs: dict[str, Any]
    plan: PlanResult
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Iterator[Applied]:
    """The sandbox-like Business service rendered for aws, resharded 3 x 1 (cluster mode, TLS), applied."""
    base = tmp_path_factory.mktemp("aws-twin")
    root, workdir = base / "twins", _write(base / "tf", _rendered_terraform("business-3x1"))
    tf = Terraform(workdir, cli_config=install_twins(root, ["aws"]), timeout=300)
    variables = [Var("user_passwords", PASSWORDS, secret=True)]
    seconds: dict[str, float] = {}
    try:
        start = time.monotonic()
        tf.init(backend=False)
        plan = tf.plan(variables)
        tf.apply(plan)
        seconds["apply"] = time.monotonic() - start
        outputs = {name: output.value for name, output in tf.output().items()}
        yield Applied(root, tf, variables, outputs, plan, seconds)
    finally:
        stop_all(root)


def test_apply_stands_up_the_cluster_the_plan_describes_reachable_with_tls_and_the_users(applied):
    outputs = applied.outputs
    assert outputs["cluster_mode"] is True and outputs["tls"] is True
    assert outputs["endpoint_port"] == 6379
    assert applied.plan.add == len(applied.plan.resource_changes)
    tls = {"ssl": True, "ssl_ca_certs": str(trusted_ca(applied.root)), "ssl_cert_reqs": "required"}
    host, port = outputs["endpoint_host"], outputs["endpoint_port"]
    with ValkeyCluster(host=host, port=port, username="default", password=PASSWORDS["default"], **tls) as cluster:
        nodes = cluster.get_nodes()
        assert len(nodes) == 6 and len({n.host for n in nodes}) == 6
        assert len(cluster.get_primaries()) == 3
        for i in range(30):
            cluster.set(f"app:{i}", i)
        assert cluster.dbsize(target_nodes=ValkeyCluster.PRIMARIES) == 30
        assert cluster.config_get("notify-keyspace-events")["notify-keyspace-events"] in ("xE", "Ex")
    with ValkeyCluster(host=host, port=port, username="app", password=PASSWORDS["app"], **tls) as app:
        assert app.get("app:1") == b"1"
        with pytest.raises(valkey.exceptions.NoPermissionError):
            app.set("elsewhere", "x")
    with pytest.raises(valkey.exceptions.AuthenticationError):
        valkey.Valkey(host=host, port=port, username="app", password="not-the-password-000", **tls).ping()
    with pytest.raises(valkey.exceptions.ConnectionError):  # the certificate is checked: no other CA will do
        valkey.Valkey(host=host, port=port, ssl=True, ssl_cert_reqs="required", socket_timeout=5).ping()


def test_the_state_holds_the_computed_attributes_of_cluster_mode(applied):

    raw = json.loads((applied.tf.workdir / "terraform.tfstate").read_text())
    group = next(r for r in raw["resources"] if r["type"] == RG)["instances"][0]["attributes"]
    assert group["configuration_endpoint_address"] == applied.outputs["endpoint_host"]
    assert group["primary_endpoint_address"] is None and group["reader_endpoint_address"] is None
    assert (group["num_node_groups"], group["replicas_per_node_group"], group["num_cache_clusters"]) == (3, 1, 6)
    assert group["cluster_enabled"] is True and group["cluster_mode"] == "enabled"
    assert group["member_clusters"] == [f"cache-prod-000{s}-00{r}" for s in (1, 2, 3) for r in (1, 2)]
    assert group["at_rest_encryption_enabled"] == "true" and group["engine_version_actual"].startswith("8.0.")
    assert group["security_group_names"] == []
    world = applied.root / "world"
    assert not any(p in path.read_text() for path in world.rglob("*.json") for p in PASSWORDS.values())


def test_a_second_plan_changes_nothing(applied):
    again = applied.tf.plan(applied.variables, out="again")
    assert not again.has_changes, [c for c in again.resource_changes if c.actions != ("no-op",)]


def test_a_renamed_user_and_a_new_port_plan_replacements(applied):
    main = applied.tf.workdir / "main.tf"
    original = main.read_text()
    edited, renamed = re.subn(r'(user_name\s*=\s*)"analytics"', r'\1"analytics2"', original)
    edited, ported = re.subn(r"(\n  port\s*=\s*)6379\n", r"\g<1>6380\n", edited)
    assert (renamed, ported) == (1, 1)
    main.write_text(edited)
    try:
        plan = applied.tf.plan(applied.variables, out="renamed")
    finally:
        main.write_text(original)
    actions = {c.address: set(c.actions) for c in plan.resource_changes if c.actions != ("no-op",)}
    assert actions["aws_elasticache_user.analytics"] == {"delete", "create"}
    assert actions[f"{RG}.cache_prod"] == {"delete", "create"}


def test_destroy_leaves_no_process(applied):
    assert len(running_processes(applied.root)) == 6
    applied.tf.destroy(applied.variables)
    assert running_processes(applied.root) == []
    assert not list((applied.root / "world" / "fleets").rglob("fleet.json"))


# ---- what the provider and the API refuse ---------------------------------------------------------------------------

HEADER = """terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "%s"
    }
  }
}

provider "aws" {
  region = "eu-west-3"
}
"""


def group(name: str, **arguments: Any) -> str:
    """A replication group resource with valid defaults, overridden (or removed with None) by ``arguments``."""
    values: dict[str, Any] = {
        "replication_group_id": f'"{name.replace("_", "-")}"',
        "description": '"twin test"',
        "engine": '"valkey"',
        "engine_version": '"8.0"',
        "node_type": '"cache.t4g.small"',
    }
    values.update({k: v for k, v in arguments.items()})
    body = "".join(f"  {k} = {v}\n" for k, v in values.items() if v is not None)
    return f'resource "{RG}" "{name}" {{\n{body}}}\n'


def user(name: str, user_name: str, kind: str = "password", passwords: str = "") -> str:
    """An ElastiCache user with an ``authentication_mode`` block."""
    secret = f"\n    passwords = {passwords}" if passwords else ""
    return (
        f'resource "aws_elasticache_user" "{name}" {{\n  user_id = "{name.replace("_", "-")}"\n'
        f'  user_name = "{user_name}"\n  engine = "valkey"\n  access_string = "on ~* +@all"\n'
        f'  authentication_mode {{\n    type = "{kind}"{secret}\n  }}\n}}\n'
    )


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory) -> Iterator[Callable[[str], Terraform]]:
    """``make(hcl)``: an initialised working directory on its own twin world (stopped afterwards)."""
    roots: list[Path] = []

    def make(hcl: str) -> Terraform:
        base = tmp_path_factory.mktemp("aws-rules")
        roots.append(base / "twins")
        _write(base / "tf", {"main.tf": HEADER % offline_provider("aws").version + hcl})
        tf = Terraform(base / "tf", cli_config=install_twins(base / "twins", ["aws"]), timeout=300)
        tf.init(backend=False)
        return tf

    yield make
    for root in roots:
        stop_all(root)


def summaries(diagnostics: Iterable[Any]) -> set[str]:
    return {d.summary for d in diagnostics if d.severity == "error"}


#: Provider validators, checked by ``terraform validate`` (resource name → exact error).
VALIDATORS = {
    "id_hyphens": (
        {"replication_group_id": '"cache--prod"'},
        "invalid value for replication_group_id (cannot contain two consecutive hyphens)",
    ),
    "id_length": (
        {"replication_group_id": '"c' + "x" * 40 + '"'},
        "expected length of replication_group_id to be in the range (1 - 40), got c" + "x" * 40,
    ),
    "maintenance": (
        {"maintenance_window": '"sun:23:00-sun:24:00"'},
        '(sun:23:00-sun:24:00) must satisfy the format of "ddd:hh24:mi-ddd:hh24:mi"',
    ),
    "snapshot": ({"snapshot_window": '"2:00-3:00"'}, '(2:00-3:00) must satisfy the format of "hh24:mi-hh24:mi"'),
    "version": ({"engine_version": '"8.0.1"'}, "engine_version: 8.0.1 is invalid. For Valkey use <major>.<minor>."),
    "engine": ({"engine": '"memcached"'}, 'expected engine to be one of ["redis" "valkey"], got memcached'),
    "retention": ({"snapshot_retention_limit": "36"}, "expected snapshot_retention_limit to be at most (35), got 36"),
    "replicas": (
        {"num_node_groups": "2", "replicas_per_node_group": "6"},
        "expected replicas_per_node_group to be in the range (0 - 5), got 6",
    ),
    "mode": (
        {"cluster_mode": '"on"'},
        'expected cluster_mode to be one of ["enabled" "disabled" "compatible"], got on',
    ),
    "token": (
        {"auth_token": '"a-token-of-16-chars-or-more"', "user_group_ids": '["users"]'},
        '"auth_token": conflicts with user_group_ids',
    ),
    "counts": (
        {"num_cache_clusters": "2", "num_node_groups": "2"},
        '"num_cache_clusters": conflicts with num_node_groups',
    ),
}

#: The provider's CustomizeDiff rules, checked by ``terraform plan``.
PLAN_RULES = {
    "multi_az": (
        {"num_cache_clusters": "2", "multi_az_enabled": "true"},
        "automatic_failover_enabled must be true if multi_az_enabled is true",
    ),
    "one_cluster": (
        {"num_cache_clusters": "1", "automatic_failover_enabled": "true"},
        '"num_cache_clusters": must be at least 2 if automatic_failover_enabled is true',
    ),
    "strategy": (
        {"auth_token_update_strategy": '"ROTATE"'},
        '"auth_token_update_strategy": "auth_token" must be specified',
    ),
}


def test_the_providers_validators_refuse_at_validate_with_their_texts(twin_dir):
    tf = twin_dir("".join(group(name, **arguments) for name, (arguments, _) in VALIDATORS.items()))
    result = tf.validate()
    assert not result.valid
    assert summaries(result.diagnostics) == {text for _, text in VALIDATORS.values()}


def test_the_providers_plan_checks_refuse_at_plan_with_their_texts(twin_dir):
    tf = twin_dir("".join(group(name, **arguments) for name, (arguments, _) in PLAN_RULES.items()))
    with pytest.raises(TerraformError) as caught:
        tf.plan()
    assert summaries(caught.value.diagnostics) == {text for _, text in PLAN_RULES.values()}


def test_what_the_api_refuses_fails_the_apply_with_its_text_and_starts_nothing(twin_dir):
    long_password = '["a-password-of-16-chars"]'
    hcl = "".join(
        [
            group("cluster-no-failover", cluster_mode='"enabled"', num_node_groups="2", replicas_per_node_group="1"),
            group(
                "single-failover", num_node_groups="1", replicas_per_node_group="0", automatic_failover_enabled="true"
            ),
            group(
                "azs", num_cache_clusters="2", preferred_cache_cluster_azs='["eu-west-3a", "eu-west-3b", "eu-west-3c"]'
            ),
            group("no-node-type", node_type=None),
            user("empty", "empty", passwords="[]"),
            user("iam", "someone-else", kind="iam"),
            user("short", "short", passwords='["too-short"]'),
            user("ok", "ok", passwords=long_password),
            'resource "aws_elasticache_user_group" "no_default" {\n  user_group_id = "no-default"\n'
            '  engine = "valkey"\n  user_ids = [aws_elasticache_user.ok.user_id]\n}\n',
        ]
    )
    tf = twin_dir(hcl)
    with pytest.raises(TerraformError) as caught:
        tf.apply(tf.plan())
    rg, api = "creating ElastiCache Replication Group", "creating ElastiCache User"
    assert summaries(caught.value.diagnostics) == {
        f"{rg} (cluster-no-failover): InvalidParameterValue: Redis with cluster mode enabled cannot be created "
        "with auto failover turned off.",
        f"{rg} (single-failover): InvalidParameterCombination: When using automatic failover, there must be at "
        "least 2 cache clusters in the replication group.",
        f"{rg} (azs): InvalidParameterValue: When specifying preferred availability zones, the number of cache "
        "clusters must be specified and must match the number of preferred availability zones.",
        '"node_type" is required unless "global_replication_group_id" is set.',
        f"{api} (empty): InvalidParameter: 1 validation error(s) found.\n"
        "- minimum field size of 1, CreateUserInput.AuthenticationMode.Passwords.",
        f"{api} (iam): InvalidParameterCombination: User Id and User name must be same for authentication type: iam",
        f"{api} (short): InvalidParameterValue: Passwords length must be between 16-128 characters.",
        f"{api} Group (no-default): DefaultUserRequired: User group needs to contain a user with the user "
        "name default.",
    }
    assert running_processes(tf.workdir.parent / "twins") == []


def test_a_users_new_password_and_new_parameters_reach_the_running_group(world):
    """Without Terraform: the twins' update path, as ModifyUser and ModifyCacheParameterGroup propagate."""

    def change(type_name, prior, planned):
        return Change(type_name, prior, planned, world=world, provider={"region": "eu-west-3"})

    old, new = "first-password-0000001", "second-password-000002"
    mode = [{"type": "password", "passwords": [old], "password_count": None}]
    app = {"user_id": "u-app", "user_name": "app", "access_string": "on ~* +@all", "authentication_mode": mode}
    users, groups, params = aws.UserTwin(), aws.UserGroupTwin(), aws.ParameterGroupTwin()
    app_state = users.create(change(aws.USER, None, app))
    groups.create(change(aws.GROUP, None, {"user_group_id": "g", "user_ids": ["default", "u-app"]}))
    group = {"name": "p", "family": "valkey8", "parameter": [{"name": "maxmemory-policy", "value": "allkeys-lru"}]}
    params_state = params.create(change(aws.PARAMS, None, group))
    rg = {"replication_group_id": "rg", "node_type": "cache.t4g.small", "engine": "valkey", "port": None}
    state = aws.ReplicationGroupTwin().create(
        change(aws.RG, None, {**rg, "user_group_ids": ["g"], "parameter_group_name": "p"})
    )
    host, port = state["primary_endpoint_address"], aws.DEFAULT_PORT
    assert valkey.Valkey(host=host, port=port, username="app", password=old).ping()
    users.update(change(aws.USER, app_state, {**app_state, "authentication_mode": [{**mode[0], "passwords": [new]}]}))
    retuned = {**group, "parameter": [{"name": "maxmemory-policy", "value": "volatile-lru"}]}
    params.update(change(aws.PARAMS, params_state, {**params_state, **retuned}))
    with pytest.raises(valkey.exceptions.AuthenticationError):
        valkey.Valkey(host=host, port=port, username="app", password=old).ping()
    with valkey.Valkey(host=host, port=port, username="app", password=new, decode_responses=True) as conn:
        assert conn.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert aws.ReplicationGroupTwin().read(state, world) == state
    twin_valkey.stop(world, aws.RG, "rg")
    assert aws.ReplicationGroupTwin().read(state, world) is None
