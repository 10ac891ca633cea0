"""selfmanaged and job read back the group_vars a render wrote (every string tagged ``!unsafe``)."""

from __future__ import annotations

import pytest
import yaml

from reproducer.pipeline import render as pipeline_render
from reproducer.pipeline.selfmanaged import read_group_vars
from tests.golden.regen import HERE


@pytest.mark.parametrize("spec", ["business.yaml", "essential.yaml"])
def test_a_freshly_rendered_selfmanaged_all_yml_reads_back(tmp_path, spec):
    out = tmp_path / "out"
    pipeline_render.render(pipeline_render.RenderRequest(spec=HERE / "specs" / spec, target="selfmanaged", out=out))
    text = (out / "ansible" / "group_vars" / "all.yml").read_text()
    with pytest.raises(yaml.constructor.ConstructorError, match="!unsafe"):
        yaml.safe_load(text)  # what selfmanaged and job used to do
    group_vars = read_group_vars(out / "ansible")
    assert group_vars["valkey_topology"] in {"standalone", "replication", "sentinel", "cluster"}
    assert isinstance(group_vars["valkey_primary_name"], str) and group_vars["valkey_primary_name"]
    assert "valkey_tls" not in group_vars or isinstance(group_vars["valkey_tls"], bool)
