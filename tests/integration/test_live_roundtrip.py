"""A self-managed 3 x 1 cluster built from a spec S reads back as S, and moves into the ovh twin (3 shards -> 1).

S is the Business spec reshaped to a cluster. The `local` target stands it up (Ansible, this machine) once for
the module; `inspect --from` reads it back (topology, users, configuration compared with S), then the spec read is
migrated with `migrate --from URL --target ovh` onto the ovh twin (the sandbox's emulator makes the service):
rendered, planned, applied, the keys copied from three shards into one and verified identical; then destroyed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import valkey
import yaml

from reproducer.pipeline import apply as pipeline_apply
from reproducer.pipeline import render as pipeline_render
from reproducer.procs import free_port_range
from reproducer.sandbox.seed import ovh_client
from reproducer.twins import install_twins, stop_all
from tests.golden.regen import HERE
from tests.support import cli
from tests.support.ovh import ovh_env, service_fleet

#: What the local target leaves at this machine's defaults (its compatibility report says so): not compared.
LOCAL_DEFAULTS = {"redis_io_threads", "redis_number_of_databases"}
SOURCE_PASSWORD = "LIVE_SOURCE_PASSWORD"


@dataclass
class Cluster:
    """The spec S, and the cluster the local target stood up from it."""

    spec: dict
    service: pipeline_apply.LocalService

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{port}" for port in self.service.ports[:2])
        return f"valkey+cluster://default@{nodes}?password_env={SOURCE_PASSWORD}"

    @property
    def env(self) -> dict[str, str]:
        return {SOURCE_PASSWORD: self.service.passwords["default"]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("live-roundtrip")
    spec = yaml.safe_load((HERE / "specs" / "business.yaml").read_text())
    spec["topology"] = {"mode": "cluster", "shards": 3, "replicas_per_shard": 1, "nodes": []}
    (root / "s.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = root / "out"
    render = pipeline_render.RenderRequest(spec=root / "s.yaml", target="local", out=out)
    request = pipeline_apply.LocalApplyRequest(render=render, base_port=free_port_range(6))
    try:
        yield Cluster(spec, pipeline_apply.apply_local(request))
    finally:
        pipeline_apply.destroy_local(out)


@pytest.mark.xdist_group("live-roundtrip")
def test_inspect_from_a_cluster_built_from_s_matches_s(cluster):
    result = cli.run("inspect", "--from", cluster.url, "--json", env=cluster.env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert cluster.service.passwords["default"] not in result.stdout + result.stderr
    read = json.loads(result.stdout)
    assert read["topology"] == cluster.spec["topology"]
    assert read["users"] == cluster.spec["users"]
    expected = {c["source_name"]: c["value"] for c in cluster.spec["configuration"]}
    got = {c["source_name"]: c["value"] for c in read["configuration"]}
    assert {k: got.get(k) for k in expected if k not in LOCAL_DEFAULTS} == {
        k: v for k, v in expected.items() if k not in LOCAL_DEFAULTS
    }
    assert read["observed"]["primaries"] == 3 and "users" not in {u["field"] for u in read["unknown"]}


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    config = install_twins(root, ["ovh"])
    yield config
    stop_all(root)


def _load(cluster: Cluster, count: int) -> None:
    client = valkey.ValkeyCluster(
        host="127.0.0.1", port=cluster.service.ports[0], password=cluster.service.passwords["default"]
    )
    try:
        client.mset_nonatomic({f"k:{i}": f"v{i}" for i in range(count)})
        client.hset("h:{k:1}", mapping={"a": "1"})
        client.set("ttl:1", "x", ex=3600)
    finally:
        client.close()


@pytest.mark.xdist_group("live-roundtrip")
def test_migrate_from_the_live_cluster_into_the_ovh_twin_reshards_3_to_1_and_verifies_identical(
    cluster, twins, api_server, seeded, tmp_path
):
    _load(cluster, 300)
    overlay, var_file, run_dir = tmp_path / "given.yaml", tmp_path / "ovh.tfvars", tmp_path / "run"
    overlay.write_text("region: GRA\nmemory_gb: 4\nname: cache-cluster\n")
    var_file.write_text(f'project_id = "{seeded.project}"\n')
    ca = service_fleet(api_server, seeded).tls_files.ca_cert  # the emulator's one CA signs every service
    env = ovh_env(seeded, OVH_ENDPOINT=api_server.url, TF_CLI_CONFIG_FILE=str(twins), **cluster.env)
    before = set(_services(api_server, seeded))

    migrate = cli.run(
        *("migrate", "--from", cluster.url, "--overlay", overlay, "--target", "ovh", "--auto-approve"),
        *("--var-file", var_file, "--target-ca", ca, "--run-dir", run_dir),
        env=env,
    )

    try:
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        assert "verify: source and target are identical" in migrate.stderr
        report = json.loads((run_dir / "report.json").read_text())
        assert report["verify"]["ok"] and report["verify"]["compared"] == report["copy"]["source_keys"] == 302
        assert report["settings"]["from"].startswith("valkey+cluster://") and not report["settings"]["project"]
        stats = json.loads((run_dir / "data" / "stats.json").read_text())
        assert len(stats["per_node"]) == 3  # three source shards ...
        outputs = json.loads((run_dir / "rendered" / "outputs.json").read_text())
        assert outputs["cluster_mode"] is False  # ... into OVH's one
        assert cluster.service.passwords["default"] not in migrate.stdout + migrate.stderr
    finally:
        out = ("--out", run_dir / "rendered", "--var-file", var_file)
        gone = cli.run("destroy", "--target", "ovh", *out, "--auto-approve", env=env)
        assert gone.returncode == 0, gone.stderr[-2000:]
    assert set(_services(api_server, seeded)) == before


def _services(api_server, seeded) -> list[str]:
    return ovh_client(api_server, seeded.credentials).get(f"/cloud/project/{seeded.project}/database/valkey")
