"""`drift`: a committed spec against the live service, through the real ovh client and the emulator."""

from __future__ import annotations

import json

from reproducer.gitops.drift import DriftReport, differences, to_markdown
from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.sandbox.seed import ovh_client
from tests.support.cli import run as reproducer
from tests.support.ovh import ovh_env, wait_ready


def test_cidr_added_and_user_removed_are_reported(api_server, seeded, scratch_project, tmp_path):
    client = ovh_client(api_server, seeded.credentials)
    base = f"/cloud/project/{scratch_project}/database/valkey"
    service = client.post(
        base,
        plan="essential",
        version="8.0",
        description="drift-check",
        nodesPattern={"flavor": "db1-4", "number": 1, "region": "GRA"},
        ipRestrictions=[{"ip": "10.1.0.0/24", "description": "app"}],
    )
    path = f"{base}/{service['id']}"
    wait_ready(client, path)
    worker = client.post(f"{path}/user", name="worker", categories=["+@read"], keys=["*"])
    options = pipeline_inspect.InspectOptions(
        project=scratch_project, service=service["id"], endpoint=api_server.url, credentials=seeded.credentials
    )
    [spec] = pipeline_inspect.inspect(options)
    committed = tmp_path / "spec.yaml"
    committed.write_text(spec.to_yaml())
    assert pipeline_inspect.drift(committed, options).differences == []
    argv = ("drift", "--spec", committed, "--endpoint", api_server.url)
    env = ovh_env(seeded)
    clean = reproducer(*argv, env=env)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.startswith(f"<!-- reproducer:drift project={scratch_project} service={service['id']} ")
    assert "no drift" in clean.stdout
    client.put(
        path,
        ipRestrictions=[
            {"ip": "10.1.0.0/24", "description": "app"},
            {"ip": "198.51.100.7/32", "description": "someone"},
        ],
    )
    wait_ready(client, path)
    client.delete(f"{path}/user/{worker['id']}")
    report = pipeline_inspect.drift(committed, options)
    found = {d.path: d for d in report.differences}
    assert found["allow_list.198.51.100.7/32"].committed is None
    assert found["users.worker"].live is None
    assert not [p for p in found if p.startswith("features")], "derived fields repeat the changes above"

    drifted = reproducer(*argv, env=env)
    assert drifted.returncode == 2, drifted.stderr
    marker = drifted.stdout.splitlines()[0]
    assert marker == clean.stdout.splitlines()[0], "the marker finds the same issue whatever the result"
    assert "| `allow_list.198.51.100.7/32` | `(none)` | `" in drifted.stdout
    assert '"cidr": "198.51.100.7/32"' in drifted.stdout and "{'" not in drifted.stdout  # JSON, not a repr
    refresh = (
        f"reproducer inspect --project {scratch_project} --service {service['id']} --endpoint {api_server.url} "
        f"-o {committed}"
    )
    assert refresh in drifted.stdout and refresh in drifted.stderr
    as_json = reproducer(*argv, "--format", "json", env=env)
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    assert data["drift"] is True and data["refresh"] == refresh
    by_path = {d["path"]: d for d in data["differences"]}
    assert by_path["users.worker"]["committed"]["name"] == "worker" and by_path["users.worker"]["live"] is None
    assert by_path["allow_list.198.51.100.7/32"]["live"] == {"cidr": "198.51.100.7/32", "description": "someone"}
    assert json.loads(reproducer(*argv, "--json", env=env).stdout) == data


def test_differences_are_keyed_not_positional():
    old = {"users": [{"name": "a", "keys": ["*"]}, {"name": "b", "keys": ["*"]}]}
    new = {"users": [{"name": "b", "keys": ["x"]}, {"name": "a", "keys": ["*"]}]}
    [only] = differences(old, new)
    assert (only.path, only.committed, only.live) == ("users.b.keys", ["*"], ["x"])
    assert only.describe() == 'users.b.keys: ["*"] → ["x"]'


def test_derived_features_are_left_out_and_values_shown_plainly():
    old = {"topology": {"shards": 1}, "features": [{"name": "scalability_shards", "in_use": False, "note": "1 shard"}]}
    new = {"topology": {"shards": 3}, "features": [{"name": "scalability_shards", "in_use": True, "note": "3 shard"}]}
    [only] = differences(old, new)
    assert only.describe() == "topology.shards: 1 → 3"
    assert differences({"maintenance_time": None}, {"maintenance_time": "04:00"})[0].describe() == (
        "maintenance_time: added live: 04:00"
    )


def test_hostile_values_stay_inside_their_table_cell():
    hostile = "x | y`\n| injected | row |"
    report = DriftReport("specs/a b.yaml", "p" * 32, "s", [differences({"d": "a"}, {"d": hostile})[0]])
    text = to_markdown(report)
    table = [line for line in text.splitlines() if line.startswith("| `d`")]
    assert len(table) == 1 and "injected" in table[0] and "\\|" in table[0]
    assert not [line for line in text.splitlines() if line.startswith("| injected")]
    assert "-o 'specs/a b.yaml'" in text
