"""`apply --target selfmanaged` without an inventory: real Terraform apply, then the inventory from its outputs.

The providers are the sandbox's (the real OpenStack provider schema, fake values for what the cloud computes),
so the instances do not exist; the test proves the Terraform half: init from the mirror, apply, the
``ansible_inventory`` output turned into groups, and re-rendering keeping the state, tfvars and inventory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from reproducer.offline import install_mirror
from reproducer.pipeline import files as pipeline_files
from reproducer.pipeline import plan as pipeline_plan
from reproducer.pipeline import render as pipeline_render
from reproducer.pipeline.selfmanaged import terraform_inventory
from tests.golden.regen import HERE


def test_terraform_apply_outputs_become_the_ansible_inventory_and_survive_a_re_render(tmp_path):
    out = tmp_path / "out"
    request = pipeline_render.RenderRequest(spec=HERE / "specs" / "business.yaml", target="selfmanaged", out=out)
    pipeline_files.write_tree(out, pipeline_render.render(request).files)
    shutil.copy(out / "terraform" / "terraform.tfvars.example", out / "terraform" / "terraform.tfvars")
    cli_config = install_mirror(tmp_path / "mirror", ["openstack"])

    inventory = terraform_inventory(out, cli_config=cli_config)

    groups = inventory["all"]["children"]
    assert len(groups["valkey"]["hosts"]) == 2, "primary + replica"
    assert len(groups["valkey_sentinel"]["hosts"]) == 3, "two data nodes and an arbiter vote"
    assert set(groups["valkey_sentinel"]["hosts"]) >= set(groups["valkey"]["hosts"])
    assert all(host["ansible_host"] for host in inventory["all"]["hosts"].values())
    assert yaml.safe_load((out / "ansible" / "inventory.yml").read_text()) == inventory
    state = (out / "terraform" / "terraform.tfstate").read_text()
    assert "openstack_compute_instance_v2" in state

    pipeline_files.write_tree(out, pipeline_render.render(request).files)
    assert (out / "terraform" / "terraform.tfstate").read_text() == state, "a re-render keeps the state"
    assert (out / "terraform" / "terraform.tfvars").is_file() and (out / "ansible" / "inventory.yml").is_file()
    again = pipeline_plan.plan(pipeline_plan.PlanRequest(render=request, terraform="none"))
    assert not again.files, "plan ignores what the deployment added"


@pytest.mark.skipif(shutil.which("terraform") is None, reason="the rendered helper runs the terraform binary")
def test_the_rendered_inventory_helper_reads_the_outputs_into_the_same_groups(tmp_path):
    out = tmp_path / "out"
    request = pipeline_render.RenderRequest(spec=HERE / "specs" / "business.yaml", target="selfmanaged", out=out)
    pipeline_files.write_tree(out, pipeline_render.render(request).files)
    shutil.copy(out / "terraform" / "terraform.tfvars.example", out / "terraform" / "terraform.tfvars")
    inventory = terraform_inventory(out, cli_config=install_mirror(tmp_path / "mirror", ["openstack"]))
    (out / "ansible" / "inventory.yml").unlink()

    helper = out / "ansible" / "inventory_from_terraform.py"
    subprocess.run([sys.executable, str(helper)], check=True, capture_output=True, cwd=tmp_path, timeout=120)

    written = yaml.safe_load((out / "ansible" / "inventory.yml").read_text())["all"]["children"]
    groups = inventory["all"]["children"]
    assert {g: set(m["hosts"]) for g, m in written.items()} == {g: set(m["hosts"]) for g, m in groups.items()}
    hosts = inventory["all"]["hosts"]
    assert all(m["hosts"][h]["ansible_host"] == hosts[h]["ansible_host"] for m in written.values() for h in m["hosts"])
