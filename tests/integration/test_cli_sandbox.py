"""The installed `reproducer` command end to end: sandbox up/status/down, inspect through ovh.conf, demo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from reproducer.procs import pid_alive
from tests.support.cli import run

#: One sandbox for the module: a parallel run gives its tests to one worker (each worker would start its own).
pytestmark = pytest.mark.xdist_group("cli-sandbox")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    up = run("sandbox", "up", "--dir", str(root), "--json")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    yield root, info
    pids = (
        [
            int(p)
            for p in (root / "fleets").glob("*/fleet.json")
            for p in [n["pid"] for n in json.loads(p.read_text())["nodes"]]
        ]
        if (root / "fleets").exists()
        else []
    )
    down = run("sandbox", "down", "--dir", str(root))
    assert down.returncode == 0
    assert pids and not any(pid_alive(p) for p in pids)


def test_up_prints_one_json_object_for_scripts(sandbox):
    _root, info = sandbox
    keys = {"endpoint", "application_key", "application_secret", "consumer_key", "project", "services", "twins"}
    assert set(info) == keys
    assert Path(info["twins"]["terraform_cli_config"]).is_file() and Path(info["twins"]["ca_file"]).is_file()
    assert info["endpoint"].startswith("http://127.0.0.1:") and info["endpoint"].endswith("/1.0")
    [service] = info["services"]
    assert service["plan"] == "business" and service["data_endpoint"].startswith("valkeys://127.0.0.1:")


def test_up_again_is_idempotent_and_status_agrees(sandbox):
    root, info = sandbox
    again = run("sandbox", "up", "--dir", str(root), "--json")
    assert json.loads(again.stdout) == info
    status = run("sandbox", "status", "--dir", str(root), "--json")
    assert status.returncode == 0 and json.loads(status.stdout) == info


def test_inspect_through_printed_ovh_conf_writes_the_spec(sandbox, tmp_path):
    root, info = sandbox
    conf = run("sandbox", "up", "--dir", str(root)).stdout
    (tmp_path / "ovh.conf").write_text(conf)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVH_")}
    result = run("inspect", "--project", info["project"], "-o", "spec.yaml", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert spec["source"]["service_id"] == info["services"][0]["id"]
    assert info["application_secret"] not in (tmp_path / "spec.yaml").read_text()


def test_exit_codes_and_messages(sandbox):
    _root, info = sandbox
    env = {
        **os.environ,
        "OVH_ENDPOINT": info["endpoint"],
        "OVH_APPLICATION_KEY": info["application_key"],
        "OVH_APPLICATION_SECRET": "0" * 32,
        "OVH_CONSUMER_KEY": info["consumer_key"],
    }
    bad_secret = run("inspect", "--project", info["project"], env=env)
    assert bad_secret.returncode == 4 and "signature" in bad_secret.stderr and "hint:" in bad_secret.stderr
    assert "0" * 32 not in bad_secret.stderr
    env["OVH_APPLICATION_SECRET"] = info["application_secret"]
    missing = run("inspect", "--project", info["project"], "--service", "nope", env=env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    unknown_endpoint = run("inspect", "--project", info["project"], "--endpoint", "ovh-mars", env=env)
    assert unknown_endpoint.returncode == 2 and "unknown OVH endpoint 'ovh-mars'" in unknown_endpoint.stderr


def test_demo_runs_the_whole_job_into_the_aws_twin_and_cleans_up(sandbox):
    """`make demo` is the main job: spec on stdout, every phase run, every key proven, the AWS twin destroyed."""
    from reproducer.twins import running_processes

    root, info = sandbox
    demo = run("demo", "--dir", str(root))
    assert demo.returncode == 0, demo.stderr
    spec = yaml.safe_load(demo.stdout)
    assert spec["source"]["project"] == info["project"] and spec["topology"]["mode"] == "sentinel"
    assert "phases run: inspect, render, plan, apply, copy, verify, report" in demo.stderr
    assert "verify: source and target are identical" in demo.stderr and "reproducer:plan target=gcp" in demo.stderr
    run_dir = next((root / "demo").glob("*/run"))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verify"]["ok"] and report["verify"]["compared"] == report["copy"]["source_keys"] > 0
    assert report["target"]["topology"] == "cluster" and report["target"]["tls"] is True, "3 x 1 with TLS"
    outputs = json.loads((run_dir / "rendered" / "outputs.json").read_text())
    assert outputs["cluster_mode"] is True
    assert "Destroy complete! Resources: " in demo.stderr and not running_processes(root / "twins")
    assert run("sandbox", "status", "--dir", str(root)).returncode == 0, "a sandbox it did not start keeps running"
    assert info["application_secret"] not in demo.stdout + demo.stderr


def test_sandbox_service_holds_the_mixed_dataset(sandbox):
    from reproducer.sandbox.fleet import Fleet

    root, info = sandbox
    fleet = Fleet.attach(root / "fleets" / info["services"][0]["id"])
    conn = fleet.client(fleet.current_primary())
    assert conn.dbsize() == 2000
    types = {conn.type(k) for k in conn.scan_iter(count=500)}
    assert types == {"string", "hash", "set", "zset", "list", "stream"}
    assert sum(1 for k in conn.scan_iter(count=500) if conn.pttl(k) > 0) > 200
    assert conn.xinfo_groups("events:000005")[0]["name"] == "workers"
