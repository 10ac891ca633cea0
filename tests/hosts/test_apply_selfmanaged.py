"""`reproducer apply --target selfmanaged --inventory`: the rendered Ansible of a real spec, on real hosts over SSH.

The Business golden spec (primary + replica behind Sentinel, TLS, three users, three CIDRs) is applied to
hosts that already exist (Terraform skipped), with the CLI as a user runs it: passwords from the environment.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import valkey
import yaml

from tests.golden.regen import HERE
from tests.hosts.conftest import selfmanaged_vars, tls_hostvars
from tests.hosts.testhosts import TestHosts
from tests.support.wait import eventually

SPEC = HERE / "specs" / "business.yaml"


def reproducer(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "reproducer.cli", *args]
    return subprocess.run(
        argv, check=False, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )


@pytest.mark.timeout(600)
def test_apply_selfmanaged_on_existing_hosts_then_again_changes_nothing(hosts: TestHosts, tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    groups = {"valkey": ["h1", "h2"], "valkey_sentinel": ["h1", "h2", "h3"]}
    inventory = hosts.inventory(groups, tls_hostvars(hosts, tls))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    # the spec's CIDRs plus this machine, as a migration host would be added
    cidrs = ["10.0.0.0/24", "192.0.2.10/32", "203.0.113.0/24", f"{hosts.bridge_ip}/32"]
    extra = selfmanaged_vars(tls, cidrs)
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(extra))
    passwords = {name: secrets.token_urlsafe(16) for name in ("default", "app", "analytics")}
    env = {**os.environ, "ANSIBLE_FORKS": "6"} | {f"REPRODUCER_PASSWORD_{n.upper()}": p for n, p in passwords.items()}
    out = tmp_path / "out"
    args = ["apply", "--target", "selfmanaged", "--spec", str(SPEC), "--out", str(out)]
    args += ["--inventory", str(tmp_path / "inventory.yml"), "--vars", str(tmp_path / "vars.yml")]

    first = reproducer(*args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"sentinel on h1 ({hosts.host('h1').ip}), h2 ({hosts.host('h2').ip})" in first.stderr

    app = client(hosts.host("h1").ip, tls, username="app", password=passwords["app"])
    app.set("app:greeting", "hello")
    assert app.wait(1, 5000) == 1
    replica = client(hosts.host("h2").ip, tls, username="default", password=passwords["default"])
    assert replica.get("app:greeting") == "hello"
    with pytest.raises(valkey.exceptions.NoPermissionError):
        app.flushall()
    sentinel = client(hosts.host("h3").ip, tls, port=26379)
    eventually(
        lambda: sentinel.sentinel_master("cache-prod")["num-other-sentinels"] == 2, "Sentinels discover each other"
    )

    again = reproducer(*args, env=env)
    assert again.returncode == 0 and ": 0 change(s) made" in again.stderr, again.stderr[-3000:]
    check = reproducer(*args, "--check", env=env)
    assert check.returncode == 0 and ": 0 change(s) that would be made" in check.stderr, check.stderr[-3000:]

    hosts_args = ["--inventory", str(tmp_path / "inventory.yml"), "--vars", str(tmp_path / "vars.yml")]
    plan_args = ["plan", "--target", "selfmanaged", "--out", str(out), *hosts_args, "--detailed-exitcode"]
    unchanged = reproducer(*plan_args, "--spec", str(SPEC), "--format", "json", env=env)
    assert unchanged.returncode == 0, unchanged.stderr[-3000:]
    assert json.loads(unchanged.stdout)["ansible"]["changed"] == 0
    spec = yaml.safe_load(SPEC.read_text())
    next(item for item in spec["configuration"] if item["valkey_name"] == "timeout")["value"] = "600"
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(spec))
    changed = reproducer(*plan_args, "--spec", str(tmp_path / "changed.yaml"), env=env)
    assert changed.returncode == 2, changed.stderr[-3000:]
    assert "Ansible tasks (--check, 3 host(s))" in changed.stdout and '+timeout "600"' in changed.stdout
    assert replica.config_get("timeout")["timeout"] == "300", "plan changed nothing on the hosts"

    written = [p for p in out.rglob("*") if p.is_file()]
    assert (out / "ansible" / "runner").is_dir() and (out / "terraform" / "main.tf").is_file()
    for path in written:
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert not [p for p in passwords.values() if p in text], f"a password is written in {path}"
    said = first.stdout + first.stderr + again.stderr + check.stderr + changed.stdout + changed.stderr
    assert not [p for p in passwords.values() if p in said]


def test_apply_selfmanaged_without_every_password_stops_before_touching_a_host(tmp_path: Path) -> None:
    inventory = {"all": {"children": {"valkey": {"hosts": {"h1": {"ansible_host": "192.0.2.1"}}}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPRODUCER_PASSWORD_")}
    env["REPRODUCER_PASSWORD_DEFAULT"] = "x" * 20
    result = reproducer(
        *("apply", "--target", "selfmanaged", "--spec", str(SPEC), "--out", str(tmp_path / "out")),
        *("--inventory", str(tmp_path / "inventory.yml")),
        env=env,
    )
    assert result.returncode == 2
    assert "no password for user(s) analytics, app" in result.stderr
    assert "REPRODUCER_PASSWORD_ANALYTICS" in result.stderr and not (tmp_path / "out").exists()


def client(ip: str, tls: Path, *, port: int = 6379, **auth: Any) -> valkey.Valkey:
    return valkey.Valkey(host=ip, port=port, ssl=True, ssl_ca_certs=str(tls / "ca.crt"), decode_responses=True, **auth)
