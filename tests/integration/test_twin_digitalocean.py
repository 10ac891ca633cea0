"""The digitalocean twin under real Terraform, and `migrate --target digitalocean` on the sandbox's Business service.

One apply of the rendered Business service (tests/golden/digitalocean) is shared by the module: a TLS primary with
its standby on 25061, the Valkey config on the servers, the trusted sources recorded. The rules run on small
configurations of their own and fail at plan time or before any Valkey starts. The end-to-end test is the user's
command: inspect, render, plan, apply on the twin, copy, verify, then a second apply with no change and destroy.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import valkey

from reproducer.offline import offline_provider
from reproducer.procs import pid_alive
from reproducer.run.terraform import Terraform, TerraformError
from reproducer.twins import install_twins, running_processes, stop_all, trusted_ca
from reproducer.twins.base import TwinError
from reproducer.twins.digitalocean import TLS_PORT, check_rules
from tests.support import cli
from tests.support.ovh import leftovers, ovh_env, service_fleet

SEE = "see docs/twins.md#digitalocean"
HEADER = f"""
terraform {{
  required_providers {{
    digitalocean = {{
      source  = "digitalocean/digitalocean"
      version = "{offline_provider("digitalocean").version}"
    }}
  }}
}}

provider "digitalocean" {{}}
"""
#: The rendered Business service, as sent to the real DigitalOcean.
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "digitalocean" / "business" / "terraform"
EXTRA = """
output "cluster" {
  value     = digitalocean_database_cluster.cache_prod
  sensitive = true
}

output "firewall" {
  value = digitalocean_database_firewall.cache_prod
}
"""


def terraform(tmp: Path, main: str) -> Terraform:
    """An initialised working directory on the twin: the golden files and :data:`EXTRA`, or ``main`` alone."""
    workdir = tmp / "work"
    if main:
        workdir.mkdir(parents=True)
        (workdir / "main.tf").write_text(main)
    else:
        shutil.copytree(GOLDEN, workdir)
        (workdir / "extra.tf").write_text(EXTRA)
    tf = Terraform(workdir, cli_config=install_twins(tmp / "twins", ["digitalocean"]), timeout=120)
    tf.init()
    return tf


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("do-twin")
    tf = terraform(tmp, "")
    tf.apply(tf.plan())
    yield tf, tmp / "twins", {k: v.value for k, v in tf.output().items()}
    tf.destroy()
    stop_all(tmp / "twins")


def connect(cluster: dict, twins: Path, password: str) -> valkey.Valkey:
    """A client of the cluster's announced host and port as ``default``, verifying TLS with the twin CA."""
    return valkey.Valkey(
        host=cluster["host"],
        port=cluster["port"],
        username="default",
        password=password,
        ssl=True,
        ssl_ca_certs=str(trusted_ca(twins)),
        ssl_cert_reqs="required",
        socket_timeout=5,
    )


def test_the_business_render_is_a_tls_primary_with_a_standby_and_its_valkey_config(applied):
    _tf, twins, outputs = applied
    cluster = outputs["cluster"]
    assert cluster["port"] == outputs["endpoint_port"] == TLS_PORT and outputs["ca_certificate"] == ""
    assert cluster["user"] == "default" and cluster["password"].startswith("AVNS_")
    assert cluster["uri"] == f"rediss://default:{cluster['password']}@{cluster['host']}:{TLS_PORT}"
    assert outputs["user_passwords"] == {"default": cluster["password"]} and outputs["user_names"] == ["default"]
    with connect(cluster, twins, cluster["password"]) as conn:
        assert conn.info("replication")["connected_slaves"] == 1
        settings = conn.config_get("lfu-log-factor") | conn.config_get("notify-keyspace-events")
        assert settings == {"lfu-log-factor": "10", "notify-keyspace-events": "xE"}
        assert conn.config_get("timeout") == {"timeout": "300"}
    with pytest.raises(valkey.exceptions.ConnectionError):
        valkey.Valkey(host=cluster["host"], port=TLS_PORT, socket_timeout=5).ping()
    rules = outputs["firewall"]["rule"]
    assert [(r["type"], r["value"]) for r in rules] == [("ip_addr", "192.0.2.10")] and rules[0]["uuid"]


def test_a_second_plan_changes_nothing_and_a_rename_replaces_while_a_resize_updates(applied):
    tf, _twins, _outputs = applied
    assert not tf.plan(out="again").has_changes
    main = tf.workdir / "main.tf"
    rendered = main.read_text()
    try:
        changed = re.sub(r"(node_count +)= 2", r"\1= 1", rendered)
        main.write_text(changed.replace('name                 = "cache-prod"', 'name                 = "cache-new"'))
        renamed = tf.plan(out="renamed").resource_changes
        main.write_text(changed)
        resized = tf.plan(out="resized").resource_changes
    finally:
        main.write_text(rendered)
    cluster = "digitalocean_database_cluster.cache_prod"
    assert {c.address: c.actions for c in renamed}[cluster] == ("delete", "create")
    assert {c.address: c.actions for c in resized if c.actions != ("no-op",)} == {cluster: ("update",)}


def test_a_cidr_rule_and_a_setting_valkey_refuses_fail_the_apply_on_the_live_cluster(applied):
    tf, twins, outputs = applied
    main = tf.workdir / "main.tf"
    rendered = main.read_text()
    broken = rendered.replace('value = "192.0.2.10"', 'value = "203.0.113.0/24"')
    broken = broken.replace(
        "  timeout                = 300\n", '  timeout = 300\n  valkey_maxmemory_policy = "sometimes"\n'
    )
    main.write_text(broken)
    try:
        with pytest.raises(TerraformError) as caught:
            tf.apply()
    finally:
        main.write_text(rendered)
    errors = [d.summary for d in caught.value.diagnostics if d.severity == "error"]
    assert len(errors) == 2 and all(": 422 (request " in e for e in errors)
    assert any("invalid ip_addr '203.0.113.0/24': an IPv4 address, not a CIDR" in e for e in errors)
    assert any("maxmemory-policy" in e for e in errors)
    with connect(outputs["cluster"], twins, outputs["cluster"]["password"]) as conn:
        assert conn.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    restored = tf.plan(out="restored")  # a failed apply leaves the resources as they were
    assert (restored.add, restored.change, restored.destroy) == (0, 0, 0)


def test_destroy_leaves_no_process(applied):
    tf, twins, _outputs = applied
    pids = running_processes(twins)
    assert len(pids) == 2
    tf.destroy()
    assert running_processes(twins) == [] and not any(map(pid_alive, pids))


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """A working directory for the rule cases."""
    tmp = tmp_path_factory.mktemp("do-rules")
    yield terraform(tmp, HEADER)
    assert running_processes(tmp / "twins") == []  # no rule case started Valkey


def cluster(label: str, **arguments: str) -> str:
    """A ``digitalocean_database_cluster`` with valid arguments, overridden by ``arguments`` (HCL values)."""
    values = {
        "name": f'"{label}"',
        "engine": '"valkey"',
        "version": '"8"',
        "size": '"db-s-1vcpu-2gb"',
        "region": '"fra1"',
        "node_count": "1",
    } | arguments
    body = "".join(f"  {k} = {v}\n" for k, v in values.items() if v)
    return f'\nresource "digitalocean_database_cluster" "{label}" {{\n{body}}}\n'


def firewall(label: str, *values: str) -> str:
    """A firewall of a cluster that does not exist, with one ``ip_addr`` rule per value."""
    rules = "".join(f'  rule {{\n    type  = "ip_addr"\n    value = "{v}"\n  }}\n' for v in values)
    return f'\nresource "digitalocean_database_firewall" "{label}" {{\n  cluster_id = "{label}"\n{rules}}}\n'


def refused(tf: Terraform, main: str, *, apply: bool) -> list[str]:
    """The errors of planning (or applying) ``main``, one text per diagnostic."""
    (tf.workdir / "main.tf").write_text(HEADER + main)
    with pytest.raises(TerraformError) as caught:
        tf.apply() if apply else tf.plan()
    return [f"{d.summary} {d.detail}" for d in caught.value.diagnostics if d.severity == "error"]


def test_provider_rules_fail_at_plan_time(rules):
    config = '\nresource "digitalocean_database_valkey_config" "c" {\n  cluster_id  = "x"\n  persistence = "aof"\n}\n'
    assert refused(rules, config, apply=False) == ['expected persistence to be one of ["off" "rdb"], got aof ' + SEE]
    errors = refused(rules, cluster("noversion", version=""), apply=False)
    assert errors == ['The argument "version" is required, but no definition was found. ' + SEE]


#: One case per API rule: (resource, a piece of its error's text).
APPLY_RULES = [
    (cluster("three", node_count="3"), "invalid num_nodes 3: valkey clusters have one primary and at most one standby"),
    (
        cluster("tiny", size='"db-s-1vcpu-1gb"', node_count="2"),
        "standby nodes are not available for the db-s-1vcpu-1gb plan",
    ),
    (cluster("seven", version='"7"'), "invalid version '7' for engine valkey"),
    (cluster("Upper"), "invalid name 'Upper'"),
    (cluster("novpc", private_network_uuid='"00000000-0000-0000-0000-000000000000"'), "private network"),
    (firewall("orphan", "192.0.2.1"), "databases/orphan/firewall: 404"),
]


def test_api_rules_fail_the_apply_with_the_clouds_422(rules):
    errors = refused(rules, "".join(main for main, _ in APPLY_RULES), apply=True)
    for _main, message in APPLY_RULES:
        assert sum(message in e for e in errors) == 1, (message, errors)
    assert sum(": 422 (request " in e for e in errors) == 5 and len(errors) == len(APPLY_RULES)


def test_trusted_sources_are_single_ipv4_addresses_and_100_at_most():
    with pytest.raises(TwinError, match="at most 100 firewall rules"):
        check_rules([{"type": "ip_addr", "value": f"10.0.{i // 250}.{i % 250}"} for i in range(101)], "c")
    for bad, text in (("203.0.113.0/24", "not a CIDR"), ("2001:db8::1", "IPv6"), ("x", "not a CIDR")):
        with pytest.raises(TwinError, match=text):
            check_rules([{"type": "ip_addr", "value": bad}], "c")
    check_rules([{"type": "tag", "value": "web"}, {"type": "ip_addr", "value": "192.0.2.1"}], "c")


def test_migrate_into_the_digitalocean_twin_is_verified_then_reapply_changes_nothing_and_destroy_stops_all(
    api_server, seeded, load_source, tmp_path
):
    root = tmp_path / "twins"
    cli_config = install_twins(root, ["digitalocean"])
    load_source(1500, seed=17)
    run_dir = tmp_path / "run"
    source_ca = service_fleet(api_server, seeded).tls_files.ca_cert
    env = ovh_env(seeded, TF_CLI_CONFIG_FILE=str(cli_config))
    try:
        migrate = cli.run(
            *("migrate", "--project", seeded.project, "--service", seeded.service_id, "--endpoint", api_server.url),
            *("--target", "digitalocean", "--auto-approve", "--allow-cidr", "127.0.0.1/32"),
            *("--source-ca", source_ca, "--target-ca", trusted_ca(root), "--run-dir", run_dir),
            env=env,
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        assert "verify: source and target are identical" in migrate.stderr
        report = json.loads((run_dir / "report.json").read_text())
        assert report["verify"]["ok"] and report["verify"]["compared"] == report["copy"]["source_keys"] > 0
        assert leftovers(api_server, seeded) == ([], []), "the source's temporary grants are undone"
        outputs = json.loads((run_dir / "rendered" / "outputs.json").read_text())
        assert outputs["tls"] is True and outputs["endpoint_port"] == TLS_PORT
        assert len(running_processes(root)) == 2, "a primary and its standby"
        compat = json.loads((run_dir / "rendered" / "compatibility.json").read_text())
        users = {r["attribute"]: r["support"] for r in compat["rows"] if r["attribute"].startswith("users.")}
        assert users and all(support == "manual" for name, support in users.items() if name != "users.default")

        out = ("--out", run_dir / "rendered")
        again = cli.run("apply", "--target", "digitalocean", "--spec", run_dir / "spec.yaml", *out, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "no changes" in again.stderr and "0 added, 0 changed, 0 destroyed" in again.stderr
        gone = cli.run("destroy", "--target", "digitalocean", *out, "--auto-approve", env=env)
        assert gone.returncode == 0, gone.stderr[-3000:]
        assert running_processes(root) == []
        assert "AVNS_" not in migrate.stdout + migrate.stderr + again.stderr, "the cloud's password is never shown"
    finally:
        stop_all(root)
