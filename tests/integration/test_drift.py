"""`drift`: a committed spec against the live service, through the real ovh client and the emulator."""

from __future__ import annotations

from reproducer.gitops.drift import differences
from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.sandbox.seed import ovh_client
from tests.support.ovh import wait_ready


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
    assert pipeline_inspect.drift(committed, options) == []
    client.put(
        path,
        ipRestrictions=[
            {"ip": "10.1.0.0/24", "description": "app"},
            {"ip": "198.51.100.7/32", "description": "someone"},
        ],
    )
    wait_ready(client, path)
    client.delete(f"{path}/user/{worker['id']}")
    found = {d.path: d for d in pipeline_inspect.drift(committed, options)}
    assert found["allow_list.198.51.100.7/32"].committed is None
    assert found["users.worker"].live is None
    assert "features.ip_allow_list.note" in found


def test_differences_are_keyed_not_positional():
    old = {"users": [{"name": "a", "keys": ["*"]}, {"name": "b", "keys": ["*"]}]}
    new = {"users": [{"name": "b", "keys": ["x"]}, {"name": "a", "keys": ["*"]}]}
    [only] = differences(old, new)
    assert (only.path, only.committed, only.live) == ("users.b.keys", ["*"], ["x"])
    assert "→" in only.describe()
