"""`reproducer plan` end to end: render, diff against the committed output, plan offline with real Terraform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reproducer.errors import InputError
from reproducer.pipeline.plan import PlanRequest, plan
from reproducer.pipeline.render import RenderRequest
from tests.golden.regen import HERE
from tests.support.cli import run as reproducer

SPEC = HERE / "specs" / "business.yaml"


def test_unchanged_then_one_more_cidr(tmp_path):
    out = tmp_path / "committed"
    assert reproducer("render", "--target", "aws", "--spec", str(SPEC), "--out", str(out)).returncode == 0
    unchanged = reproducer("plan", "--target", "aws", "--spec", str(SPEC), "--out", str(out), "--detailed-exitcode")
    assert unchanged.returncode == 0, unchanged.stderr
    assert "No rendered file changes" in unchanged.stdout
    spec = yaml.safe_load(SPEC.read_text())
    spec["allow_list"].append({"cidr": "198.51.100.0/24", "description": "new office"})
    changed_spec = tmp_path / "spec.yaml"
    changed_spec.write_text(yaml.safe_dump(spec, sort_keys=False))
    args = ("plan", "--target", "aws", "--spec", str(changed_spec), "--out", str(out), "--detailed-exitcode")
    changed = reproducer(*args)
    assert changed.returncode == 2, changed.stderr
    assert "Create: `aws_vpc_security_group_ingress_rule.cache_prod_198_51_100_0_24`" in changed.stdout
    assert "| Terraform (offline, vs committed) | 1 | 0 | 0 | 0 |" in changed.stdout
    data = json.loads(reproducer(*args, "--format", "json").stdout)
    assert data["changes"] and data["terraform"]["create"] == 1
    assert [f["path"] for f in data["files"]] == ["terraform/main.tf"]


def test_errors_exit_1_with_detailed_exitcode(tmp_path):
    missing = reproducer(
        "plan", "--target", "aws", "--spec", str(tmp_path / "nope.yaml"), "--out", str(tmp_path), "--detailed-exitcode"
    )
    assert missing.returncode == 1 and "cannot read spec" in missing.stderr
    plain = reproducer("plan", "--target", "aws", "--spec", str(tmp_path / "nope.yaml"), "--out", str(tmp_path))
    assert plain.returncode == 2
    assert not Path(tmp_path / "terraform").exists()


def test_a_committed_provisioner_is_refused_before_anything_runs(tmp_path):
    out = tmp_path / "committed"
    assert reproducer("render", "--target", "aws", "--spec", str(SPEC), "--out", str(out)).returncode == 0
    marker = tmp_path / "ran"
    main = out / "terraform" / "main.tf"
    provisioner = f'provisioner "local-exec" {{\n    command = "touch {marker}"\n  }}'
    main.write_text(main.read_text() + f'\nresource "terraform_data" "x" {{\n  {provisioner}\n}}\n')
    refused = reproducer("plan", "--target", "aws", "--spec", str(SPEC), "--out", str(out))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "provisioner" in refused.stderr and "terraform/main.tf" not in refused.stdout
    assert not marker.exists(), "plan ran a command from the committed Terraform"
    main.write_text(main.read_text() + 'module remote {\n  source = "git::https://example.invalid/x.git"\n}\n')
    fetched = reproducer("plan", "--target", "aws", "--spec", str(SPEC), "--out", str(out))
    assert fetched.returncode == 2 and "a module block in terraform/main.tf" in fetched.stderr, fetched.stderr


def test_a_mistyped_out_is_an_error_unless_new(tmp_path):
    out = tmp_path / "committed"
    assert reproducer("render", "--target", "aws", "--spec", str(SPEC), "--out", str(out)).returncode == 0
    typo = tmp_path / "comitted"
    args = ("plan", "--target", "aws", "--spec", str(SPEC), "--terraform", "none")
    mistyped = reproducer(*args, "--out", str(typo), "--detailed-exitcode")
    assert mistyped.returncode == 1, mistyped.stdout + mistyped.stderr
    assert "does not exist" in mistyped.stderr and "--new" in mistyped.stderr and mistyped.stdout == ""

    def request(directory: Path, *, new: bool = False) -> PlanRequest:
        return PlanRequest(RenderRequest(spec=SPEC, target="aws", out=directory), terraform="none", new=new)

    typo.mkdir()
    with pytest.raises(InputError, match="is empty"):
        plan(request(typo))
    first = plan(request(typo, new=True))
    assert first.has_changes and ("terraform/main.tf", "added") in [(f.path, f.status) for f in first.files]
    assert list(typo.iterdir()) == [], "plan writes nothing into OUT"
    with pytest.raises(InputError, match="holds one"):
        plan(request(out, new=True))
