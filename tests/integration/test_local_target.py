"""The `local` target: the Ansible roles stand Valkey up on this machine, for real, idempotently."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import valkey

from reproducer.pipeline import apply as pipeline_apply
from reproducer.pipeline import plan as pipeline_plan
from reproducer.pipeline import render as pipeline_render
from reproducer.procs import free_port_range, pid_alive
from tests.golden.regen import HERE
from tests.support.wait import eventually

SPEC = HERE / "specs" / "business.yaml"


def pids(data_dir: Path) -> list[int]:
    return [int(p.read_text()) for p in data_dir.rglob("*.pid")]


def apply(out: Path, **kwargs) -> pipeline_apply.LocalService:
    """``apply --target local`` of the Business spec into ``out`` (``shards``/``replicas`` override the spec's)."""
    render = pipeline_render.RenderRequest(
        spec=SPEC, target="local", out=out, shards=kwargs.pop("shards", None), replicas=kwargs.pop("replicas", None)
    )
    return pipeline_apply.apply_local(pipeline_apply.LocalApplyRequest(render=render, **kwargs))


def destroy(out: Path) -> None:
    """Tear the deployment of ``out`` down and check that none of its processes or files is left."""
    data = pipeline_apply.local_data_dir(out.resolve())
    running = pids(data) if data.exists() else []
    pipeline_apply.destroy_local(out)
    assert not any(pid_alive(p) for p in running) and not data.exists()


@pytest.fixture
def local(tmp_path):
    started: list[Path] = []

    def deploy(**kwargs) -> pipeline_apply.LocalService:
        out = tmp_path / "out"
        started.append(out)
        return apply(out, **kwargs)

    yield deploy
    for out in started:
        destroy(out)


@dataclass
class Deployed:
    """A deployment shared by the tests of this module that take it (its output directory and base port)."""

    out: Path
    base_port: int
    service: pipeline_apply.LocalService


@pytest.fixture(scope="module")
def sentinel_deployment(tmp_path_factory) -> Iterator[Deployed]:
    """The Business spec as primary + replica + three Sentinels, stood up once for the plan and failover tests.

    The plan's check runs first (it changes nothing); the failover test then starts from the same deployment.
    Both tests are in one xdist group, so a parallel run stands it up once too.
    """
    out = tmp_path_factory.mktemp("sentinel") / "out"
    base = free_port_range(2)
    try:
        yield Deployed(out, base, apply(out, base_port=base))
    finally:
        destroy(out)


@pytest.mark.xdist_group("local-sentinel")
def test_plan_runs_the_playbook_in_check_mode_against_the_deployed_target(sentinel_deployment, tmp_path):
    """A spec change shows as the Ansible tasks that would change, with their diff; no change shows none."""
    import yaml

    from reproducer.gitops.plan import to_markdown

    service, out = sentinel_deployment.service, sentinel_deployment.out
    unchanged = pipeline_plan.plan(
        pipeline_plan.PlanRequest(
            render=pipeline_render.RenderRequest(spec=SPEC, target="local", out=out), passwords=service.passwords
        )
    )
    assert unchanged.ansible is not None and unchanged.ansible.changed == 0 and not unchanged.has_changes
    spec = yaml.safe_load(SPEC.read_text())
    timeout = next(item for item in spec["configuration"] if item["valkey_name"] == "timeout")
    timeout["value"] = "600"
    changed_spec = tmp_path / "changed.yaml"
    changed_spec.write_text(yaml.safe_dump(spec))
    report = pipeline_plan.plan(
        pipeline_plan.PlanRequest(
            render=pipeline_render.RenderRequest(spec=changed_spec, target="local", out=out),
            passwords=service.passwords,
        )
    )
    assert report.has_changes and report.ansible is not None and report.ansible.changed > 0
    assert '+timeout "600"' in report.ansible.diff and any("managed" in task for task in report.ansible.tasks)
    comment = to_markdown(report)
    assert "Ansible tasks (--check, this machine)" in comment and '+timeout "600"' in comment
    assert not [p for p in service.passwords.values() if p in comment + report.ansible.diff]
    client = valkey.Valkey(port=service.ports[0], username="default", password=service.passwords["default"])
    assert client.config_get("timeout")["timeout"] == "300", "a check changes nothing"


@pytest.mark.xdist_group("local-sentinel")
def test_primary_replica_and_sentinels_with_users_and_failover(sentinel_deployment):
    base, service = sentinel_deployment.base_port, sentinel_deployment.service
    assert service.topology == "sentinel" and len(service.sentinel_ports) == 3
    app = valkey.Valkey(port=service.ports[0], username="app", password=service.passwords["app"])
    app.set("app:k", "v")
    replica = valkey.Valkey(port=service.ports[1], username="default", password=service.passwords["default"])
    eventually(lambda: replica.get("app:k") == b"v", "replication to carry the key", timeout=10)
    with pytest.raises(valkey.exceptions.NoPermissionError):
        valkey.Valkey(port=service.ports[0], username="analytics", password=service.passwords["analytics"]).set("x", 1)
    again = apply(sentinel_deployment.out, base_port=base, passwords=service.passwords)
    assert again.changed == 0
    primary_pid = int((service.data_dir / f"valkey-{service.ports[0]}" / "valkey.pid").read_text())
    os.kill(primary_pid, signal.SIGKILL)
    sentinel = valkey.Valkey(port=service.sentinel_ports[0], decode_responses=True)

    def named_primary() -> int:
        return int(sentinel.sentinel_get_master_addr_by_name(service.primary_name)[1])

    eventually(lambda: named_primary() != service.ports[0], "a failover", timeout=30, interval=0.2)
    (service.data_dir / f"valkey-{service.ports[0]}" / "valkey.pid").unlink(missing_ok=True)
    apply(sentinel_deployment.out, base_port=base, passwords=service.passwords)
    old = valkey.Valkey(port=service.ports[0], username="default", password=service.passwords["default"])
    eventually(
        lambda: replicates_from(old, service.ports[1]),
        "the restarted old primary to sync as a replica of the new one",
        timeout=30,
        ignoring=(valkey.exceptions.ConnectionError,),
    )
    assert named_primary() == service.ports[1], "the re-apply moved the primary back"


def replicates_from(server: valkey.Valkey, port: int) -> bool:
    """Whether ``server`` is a replica of the server on ``port`` with its link up."""
    info = server.info("replication")
    return info["role"] == "slave" and info["master_port"] == port and info["master_link_status"] == "up"


def test_cluster_three_shards_one_replica(local):
    base = free_port_range(6)
    service = local(base_port=base, shards=3, replicas=1)
    client = valkey.Valkey(
        port=service.ports[0], username="default", password=service.passwords["default"], decode_responses=True
    )
    info = client.execute_command("CLUSTER", "INFO")
    assert "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info
    again = local(base_port=base, shards=3, replicas=1, passwords=service.passwords)
    assert again.changed == 0


def _spec_with_timeout(tmp_path: Path, seconds: str) -> Path:
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    spec["configuration"] = [
        {**item, "value": seconds} if item["valkey_name"] == "timeout" else item for item in spec["configuration"]
    ]
    path = tmp_path / f"timeout-{seconds}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_changed_setting_restarts_only_valkey_processes_of_the_deployment(tmp_path):
    """The restart after a configuration change signals the pid in the pidfile only when it is this deployment's."""
    import subprocess

    out, base = tmp_path / "out", free_port_range(1)

    def apply(seconds: str, passwords: dict[str, str] | None = None) -> pipeline_apply.LocalService:
        render = pipeline_render.RenderRequest(
            spec=_spec_with_timeout(tmp_path, seconds), target="local", out=out, replicas=0
        )
        return pipeline_apply.apply_local(
            pipeline_apply.LocalApplyRequest(render=render, base_port=base, passwords=passwords)
        )

    service = apply("300")
    try:
        admin = valkey.Valkey(port=base, username="default", password=service.passwords["default"])
        apply("600", service.passwords)
        assert admin.config_get("timeout") == {"timeout": "600"}
        pidfile = service.data_dir / f"valkey-{base}" / "valkey.pid"
        real = pidfile.read_text()
        bystander = subprocess.Popen(["sleep", "60"])
        try:
            pidfile.write_text(f"{bystander.pid}\n")
            apply("900", service.passwords)  # the pidfile names no valkey of this deployment: nothing is signalled
            assert bystander.poll() is None, "a process that is not this deployment's valkey was signalled"
        finally:
            bystander.kill()
            pidfile.write_text(real)
    finally:
        pipeline_apply.destroy_local(out)
