"""A self-managed 3 x 1 cluster built from a spec S reads back as S, and moves into the ovh twin (3 shards -> 1).

S is the Business spec reshaped to a cluster. The `local` target stands it up (Ansible, this machine) once for
the module; `inspect --from` reads it back (topology, users, configuration compared with S), then the spec read is
rendered for `ovh` and applied on the ovh twin (the sandbox's emulator makes the service), the keys are copied
into it with `copy` and verified identical, and the twin is destroyed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import valkey
import yaml

from reproducer.pipeline import apply as pipeline_apply
from reproducer.pipeline import cloud as pipeline_cloud
from reproducer.pipeline import render as pipeline_render
from reproducer.procs import free_port_range
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
def test_a_cluster_read_live_moves_into_the_ovh_twin_as_one_shard_and_verifies_identical(
    cluster, twins, api_server, seeded, tmp_path
):
    _load(cluster, 300)
    spec = tmp_path / "spec.yaml"
    read = cli.run(
        *("inspect", "--from", cluster.url, "--region", "GRA", "--memory-gb", "4", "-o", spec), env=cluster.env
    )
    assert read.returncode == 0, read.stderr[-2000:]
    var_file = tmp_path / "ovh.tfvars"
    var_file.write_text(f'project_id = "{seeded.project}"\n')
    credentials = ovh_env(seeded, OVH_ENDPOINT=api_server.url)
    ovh_keys = {k: v for k, v in credentials.items() if k.startswith("OVH_")}
    out = tmp_path / "ovh"
    apply = pipeline_cloud.CloudApplyRequest(
        render=pipeline_render.RenderRequest(spec=spec, target="ovh", out=out),
        var_files=(var_file,),
        auto_approve=True,
        cli_config=twins,
        env=ovh_keys,
    )
    target = pipeline_cloud.apply_cloud(apply)
    try:
        assert not target.cluster and target.tls
        ca = service_fleet(api_server, seeded).tls_files.ca_cert  # the emulator's one CA signs every service
        target_url = f"valkeys://default@{target.host}:{target.port}?password_env=LIVE_TARGET_PASSWORD&ca={ca}"
        env = {**cluster.env, "LIVE_TARGET_PASSWORD": target.passwords["default"]}

        copied = cli.run("copy", cluster.url, target_url, "--run-dir", tmp_path / "run", env=env)

        assert copied.returncode == 0, copied.stderr[-3000:]
        assert "identical" in copied.stderr
        stats = json.loads((tmp_path / "run" / "data" / "stats.json").read_text())
        assert len(stats["per_node"]) == 3 and stats["total"]["copied"] == 302
    finally:
        env = {**credentials, "TF_CLI_CONFIG_FILE": str(twins)}
        gone = cli.run("destroy", "--target", "ovh", "--out", out, "--var-file", var_file, "--auto-approve", env=env)
        assert gone.returncode == 0, gone.stderr[-2000:]
