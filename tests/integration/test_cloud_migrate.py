"""`migrate --target aws|gcp|ovh|aiven --auto-approve` on the sandbox's Business service, applied on cloud twins.

The rendered Terraform is applied, unchanged, by real Terraform on the twins (real Valkey shaped like each
cloud's service); the job copies every key into what the outputs name and verifies it. Then a second apply changes
nothing and destroy leaves no twin process.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.pipeline.cloud import CloudApplyRequest, apply_cloud, destroy_cloud
from reproducer.pipeline.job import JobRequest, run_job
from reproducer.pipeline.render import RenderRequest
from reproducer.sandbox.seed import ovh_client
from reproducer.twins import install_twins, running_processes, stop_all, trusted_ca
from tests.support.ovh import leftovers, service_fleet

#: The variables each target's render leaves without a default (what a user's .tfvars gives).
VAR_FILES = {
    "aws": "",
    "gcp": 'project_id = "twin-project-1"\n',
    "aiven": 'project = "twin-project"\n',
    "ovh": None,  # the target project: a project of the emulator, written by the test
}


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    config = install_twins(root, ["aws", "google", "ovh", "aiven", "random"])
    yield root, config
    stop_all(root)


def _var_file(target: str, directory: Path, api_server, seeded) -> tuple[Path, ...]:
    text = VAR_FILES[target]
    if text is None:
        text = f'project_id = "{seeded.project}"\nvrack_id = "pn-000001"\n'
    if not text:
        return ()
    path = directory / f"{target}.tfvars"
    path.write_text(text)
    return (path,)


@pytest.fixture
def ovh_provider_env(monkeypatch, api_server, seeded):
    """The ovh provider's credentials, in its usual variables (the twin drives the emulator with them)."""
    monkeypatch.setenv("OVH_ENDPOINT", api_server.url)
    monkeypatch.setenv("OVH_APPLICATION_KEY", seeded.credentials["application_key"])
    monkeypatch.setenv("OVH_APPLICATION_SECRET", seeded.credentials["application_secret"])
    monkeypatch.setenv("OVH_CONSUMER_KEY", seeded.credentials["consumer_key"])


@pytest.mark.parametrize("target", ["aws", "gcp", "ovh", "aiven"])
def test_migrate_into_each_cloud_twin_is_verified_then_reapply_changes_nothing_and_destroy_stops_all(
    target, twins, api_server, seeded, load_source, tmp_path, ovh_provider_env
):
    root, cli_config = twins
    load_source(1500, seed=13)
    passwords = {name: secrets.token_urlsafe(18) for name in ("default", "app", "analytics")}
    run_dir = tmp_path / "run"
    source_ca = service_fleet(api_server, seeded).tls_files.ca_cert
    request = JobRequest(
        inspect=pipeline_inspect.InspectOptions(
            project=seeded.project, service=seeded.service_id, endpoint=api_server.url, credentials=seeded.credentials
        ),
        target=target,
        run_dir=run_dir,
        allow_cidr="127.0.0.1/32",
        source_ca=source_ca,
        # the clouds' certificates chain to the twins' CA; OVH's to the emulator's one CA (the source's too)
        target_ca=source_ca if target == "ovh" else trusted_ca(root),
        passwords={} if target == "ovh" else passwords,
        var_files=_var_file(target, tmp_path, api_server, seeded),
        auto_approve=True,
        cli_config=cli_config,
    )
    before = set(running_processes(root))

    result = run_job(request)

    assert result.migration is not None and result.migration.verify.ok
    assert result.migration.copy.total.copied == result.migration.copy.source_keys > 0
    assert leftovers(api_server, seeded) == ([], []), "the source's temporary grants are undone"
    assert (run_dir / "plan.md").is_file() and (run_dir / "report.md").is_file()
    outputs = json.loads((run_dir / "rendered" / "outputs.json").read_text())
    assert outputs["tls"] is True and outputs["endpoint_port"] > 0
    assert json.loads((run_dir / "report.json").read_text())["verify"]["ok"] is True
    if target == "ovh":  # the ovh twin has the emulator make the service: a second one in the project
        assert (
            len(ovh_client(api_server, seeded.credentials).get(f"/cloud/project/{seeded.project}/database/valkey")) == 2
        )
    else:
        assert set(running_processes(root)) > before, "the twin runs real Valkey"

    render = RenderRequest(spec=run_dir / "spec.yaml", target=target, out=run_dir / "rendered")
    again = CloudApplyRequest(
        render=render,
        passwords=request.passwords,
        var_files=request.var_files,
        auto_approve=True,
        cli_config=cli_config,
    )
    assert apply_cloud(again).changes == (0, 0, 0), "a second apply changes nothing"

    destroy_cloud(again)
    assert set(running_processes(root)) <= before, "destroy leaves no process of this target"
    assert ovh_client(api_server, seeded.credentials).get(f"/cloud/project/{seeded.project}/database/valkey") == [
        seeded.service_id
    ]
