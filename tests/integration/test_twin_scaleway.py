"""The scaleway twin under real Terraform: Redis 7.0 shaped by cluster_size, the cloud's rules, and a migration.

One apply (the rendered Essential service, tests/golden/scaleway: one node, public ACL, TLS) is shared by the
module; the rules run on small configurations of their own and fail at plan time or before any server starts;
then one `reproducer migrate --target scaleway` from the sandbox's Business service, resharded to cluster mode.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import ssl
from pathlib import Path

import pytest
import valkey

from reproducer.offline import offline_provider
from reproducer.procs import pid_alive
from reproducer.run.terraform import Terraform, TerraformError, Var
from reproducer.twins import install_twins, running_processes, stop_all, trusted_ca
from tests.support import cli
from tests.support.ovh import leftovers, ovh_env, service_fleet

HEADER = f"""
terraform {{
  required_providers {{
    scaleway = {{
      source  = "scaleway/scaleway"
      version = "{offline_provider("scaleway").version}"
    }}
  }}
}}

provider "scaleway" {{
  zone = "fr-par-1"
}}
"""
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "scaleway" / "essential" / "terraform"
EXTRA = """
output "cluster" {
  value     = scaleway_redis_cluster.sessions
  sensitive = true
}
"""
PASSWORD = "Sessions-Pass-1234"


def terraform(tmp: Path, main: str) -> Terraform:
    """An initialised working directory (the golden files and :data:`EXTRA`, or ``main`` alone) on the twin."""
    workdir = tmp / "work"
    if main:
        workdir.mkdir(parents=True)
        (workdir / "main.tf").write_text(main)
    else:
        shutil.copytree(GOLDEN, workdir)
        (workdir / "extra.tf").write_text(EXTRA)
    tf = Terraform(workdir, cli_config=install_twins(tmp / "twins", ["scaleway"]), timeout=120)
    tf.init()
    return tf


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scaleway-twin")
    try:  # a failed apply may have started servers that no state records: stop them by the world's records
        tf = terraform(tmp, "")
        secret = [Var("user_passwords", {"default": PASSWORD}, secret=True)]
        tf.apply(tf.plan(secret), secret)
        outputs = {k: v.value for k, v in tf.output().items()}
        yield tf, tmp, secret, outputs
        tf.destroy(secret)
    finally:
        stop_all(tmp / "twins")


def test_essential_is_one_redis_7_node_on_an_ip_with_its_own_self_signed_certificate(applied):
    tf, tmp, _secret, outputs = applied
    cluster = outputs["cluster"]
    assert cluster["cluster_size"] == 1 and cluster["version"] == "7.0.5"
    host, port = outputs["endpoint_host"], outputs["endpoint_port"]
    assert re.fullmatch(r"127\.\d+\.\d+\.\d+", host) and port == 6379
    assert cluster["public_network"][0]["ips"] == [host] and cluster["private_network"] == []
    assert [rule["ip"] for rule in cluster["acl"]] == ["203.0.113.7/32"] and cluster["acl"][0]["id"]
    pem = outputs["ca_certificate"]
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and pem != trusted_ca(tmp / "twins").read_text()
    ca_file = tmp / "cluster.pem"
    ca_file.write_text(pem)
    with valkey.Valkey(
        host=host, port=port, username="default", password=PASSWORD, ssl=True, ssl_ca_certs=str(ca_file)
    ) as conn:
        server = conn.info("server")
        assert server["redis_version"].startswith("7.0.") and "valkey_version" not in server
        assert conn.info("replication")["connected_slaves"] == 0
    with pytest.raises(valkey.exceptions.ConnectionError, match="certificate verify failed"):
        valkey.Valkey(host=host, port=port, ssl=True, ssl_ca_certs=str(trusted_ca(tmp / "twins"))).ping()
    assert PASSWORD not in (tf.workdir / "terraform.tfstate").read_text(), "password_wo stays out of the state"


def test_second_plan_changes_nothing_and_leaving_one_node_plans_a_replacement(applied):
    tf, _tmp, secret, _outputs = applied
    assert not tf.plan(secret, out="again").has_changes
    main = tf.workdir / "main.tf"
    rendered = main.read_text()
    try:
        main.write_text(rendered.replace("cluster_size        = 1", "cluster_size        = 2"))
        changes = tf.plan(secret, out="bigger").resource_changes
    finally:
        main.write_text(rendered)
    assert {c.address: c.actions for c in changes if c.actions != ("no-op",)} == {
        "scaleway_redis_cluster.sessions": ("delete", "create")
    }


def test_a_new_password_version_and_settings_reach_the_server(applied):
    tf, tmp, _secret, outputs = applied
    main = tf.workdir / "main.tf"
    main.write_text(
        main.read_text().replace("  acl {", '  settings = {\n    "maxmemory-policy" = "allkeys-lru"\n  }\n\n  acl {', 1)
    )
    again = [Var("user_passwords", {"default": "Sessions-Pass-5678"}, secret=True), Var("password_version", 2)]
    assert tf.apply(tf.plan(again, out="update"), again).change == 1
    ca_file = tmp / "cluster.pem"
    ca_file.write_text(outputs["ca_certificate"])
    address = {"host": outputs["endpoint_host"], "port": 6379, "ssl": True, "ssl_ca_certs": str(ca_file)}
    with valkey.Valkey(**address, username="default", password="Sessions-Pass-5678") as conn:
        assert conn.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    with pytest.raises(valkey.exceptions.AuthenticationError):
        valkey.Valkey(**address, username="default", password=PASSWORD).ping()


def test_destroy_leaves_no_process(applied):
    tf, tmp, _secret, _outputs = applied
    pids = running_processes(tmp / "twins")
    assert len(pids) == 1
    tf.destroy([Var("user_passwords", {"default": "x"}, secret=True)])
    assert running_processes(tmp / "twins") == [] and not any(map(pid_alive, pids))


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """A working directory for the rule cases."""
    tmp = tmp_path_factory.mktemp("scaleway-rules")
    try:
        yield terraform(tmp, HEADER)
        assert running_processes(tmp / "twins") == []  # no rule case started a server
    finally:
        stop_all(tmp / "twins")


def cluster(name: str, body: str = "", *, version: str = "7.0.5", size: int = 1) -> str:
    """A ``scaleway_redis_cluster`` with ``body`` added."""
    return f"""
resource "scaleway_redis_cluster" "{name}" {{
  name         = "{name}"
  version      = "{version}"
  node_type    = "RED1-MICRO"
  cluster_size = {size}
  user_name    = "app"
  password     = "App-Pass-1234"
{body}}}
"""


def refused(tf: Terraform, main: str, *, apply: bool) -> list[str]:
    """The errors of planning (or applying) ``main``, one text per diagnostic."""
    (tf.workdir / "main.tf").write_text(HEADER + main)
    with pytest.raises(TerraformError) as caught:
        tf.apply() if apply else tf.plan()
    return [f"{d.summary} {d.detail}" for d in caught.value.diagnostics if d.severity == "error"]


PLAN_RULES = [
    (
        cluster(
            "both",
            '  acl {\n    ip = "10.0.0.0/8"\n  }\n  private_network {\n'
            '    id = "fr-par/6ba7b810-9dad-11d1-80b4-00c04fd430c8"\n  }\n',
        ),
        '"acl": conflicts with private_network',
    ),
    (
        cluster("nocidr", '  acl {\n    ip = "203.0.113.7"\n  }\n'),
        'expected "ip" to be a valid IPv4 Value, got 203.0.113.7: invalid CIDR address: 203.0.113.7',
    ),
]


def test_provider_rules_fail_at_plan_time(rules):
    errors = refused(rules, "".join(main for main, _ in PLAN_RULES), apply=False)
    for _main, text in PLAN_RULES:
        assert any(text in error for error in errors), (text, errors)


#: One case per API rule: (resource, the text after the SDK's prefix). All fail in one apply, before any start.
API_RULES = [
    (
        cluster("v6", '  acl {\n    ip = "2001:db8::/32"\n  }\n'),
        "acl_rules.ip_cidr 2001:db8::/32: IPv6 is not supported by the Scaleway API",
    ),
    (cluster("seven", size=7), "cluster_size 7: set 1 (standalone), 2 (high availability) or 3 to 6 (cluster)"),
    (cluster("valkey", version="8.0"), "version '8.0' is not an available Redis version (6.2.7, 7.0.5)"),
    (cluster("timeout", '  settings = {\n    "timeout" = "300"\n  }\n'), "settings: timeout not among"),
]


def test_api_rules_fail_at_apply_before_any_server_starts(rules):
    errors = refused(rules, "".join(main for main, _ in API_RULES), apply=True)
    for _main, text in API_RULES:
        assert any(f"scaleway-sdk-go: invalid argument(s): {text}" in error for error in errors), (text, errors)


def test_migrate_from_the_business_service_into_a_resharded_cluster_is_verified(
    api_server, seeded, load_source, tmp_path
):
    """`migrate --target scaleway --shards 3`: Valkey 8 → Redis 7.0 cluster (RDB 11 → 10), verified identical."""
    root = tmp_path / "twins"
    cli_config = install_twins(root, ["scaleway"])
    load_source(60, seed=16)
    run_dir, var_file = tmp_path / "run", tmp_path / "scaleway.tfvars"
    var_file.write_text('zone = "fr-par-2"\n')
    source_ca = service_fleet(api_server, seeded).tls_files.ca_cert
    passwords = {"default": secrets.token_urlsafe(18)}  # Scaleway's one user: the others are manual, none is asked
    env = ovh_env(
        seeded,
        TF_CLI_CONFIG_FILE=str(cli_config),
        **{f"REPRODUCER_PASSWORD_{name.upper()}": value for name, value in passwords.items()},
    )
    try:
        migrate = cli.run(
            *("migrate", "--project", seeded.project, "--service", seeded.service_id, "--endpoint", api_server.url),
            *("--target", "scaleway", "--shards", "3", "--auto-approve", "--var-file", var_file),
            *("--allow-cidr", "127.0.0.1/32", "--source-ca", source_ca, "--run-dir", run_dir),
            env=env,
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        assert "verify: source and target are identical" in migrate.stderr
        report = json.loads((run_dir / "report.json").read_text())
        assert report["verify"]["ok"] and report["verify"]["compared"] == report["copy"]["source_keys"] > 0
        assert leftovers(api_server, seeded) == ([], [])
        outputs = json.loads((run_dir / "rendered" / "outputs.json").read_text())
        assert outputs["tls"] is True and outputs["cluster_mode"] is True and outputs["endpoint_port"] == 6379
        assert all(secret not in migrate.stdout + migrate.stderr for secret in passwords.values())
        pem = (run_dir / "rendered" / "target-ca.pem").read_text()
        assert pem == outputs["ca_certificate"] != trusted_ca(root).read_text(), "the copy trusted the cluster's PEM"
        context = ssl.create_default_context(cafile=str(run_dir / "rendered" / "target-ca.pem"))
        assert context.cert_store_stats()["x509_ca"] == 1
        assert len(running_processes(root)) == 6, "three primaries, each with a replica"
        compat = (run_dir / "rendered" / "COMPATIBILITY.md").read_text()
        assert "Redis 7.0.5, not Valkey" in compat and "RDB 11" in compat

        out = ("--out", run_dir / "rendered", "--var-file", var_file)
        spec = ("--spec", run_dir / "spec.yaml", "--shards", "3")
        again = cli.run("apply", "--target", "scaleway", *spec, *out, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "no changes" in again.stderr, "the private network's endpoints are planned as they are"
        gone = cli.run("destroy", "--target", "scaleway", *out, "--auto-approve", env=env)
        assert gone.returncode == 0, gone.stderr[-3000:]
        assert running_processes(root) == []
    finally:
        stop_all(root)
