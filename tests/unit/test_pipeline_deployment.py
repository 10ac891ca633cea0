"""`plan --target local` reads the committed ansible/deployment.yml (from a pull request): it is validated whole
before any Ansible check starts."""

from __future__ import annotations

import copy
import time

import pytest
import yaml

from reproducer.errors import InputError
from reproducer.pipeline import plan as pipeline_plan
from reproducer.pipeline import render as pipeline_render
from tests.golden.regen import HERE

SPEC = HERE / "specs" / "business.yaml"
GOOD = {
    "valkey_base_dir": "/srv/valkey",
    "valkey_instances": [
        {"name": "valkey-7100", "port": 7100, "role": "primary", "shard": 0, "primary_port": 7100},
        {"name": "valkey-7101", "port": 7101, "role": "replica", "shard": 0, "primary_port": 7100},
    ],
    "valkey_sentinel_ports": [8100, 8101, 8102],
}


def _changed(path: tuple[str | int, ...], value: object) -> dict[str, object]:
    data = copy.deepcopy(GOOD)
    *parents, last = path
    node: object = data
    for key in parents:
        node = node[key]  # type: ignore[index]
    node[last] = value  # type: ignore[index]
    return data


BAD = {
    "first port -1": _changed(("valkey_instances", 0, "port"), -1),
    "second port 0": _changed(("valkey_instances", 1, "port"), 0),
    "second port 70000": _changed(("valkey_instances", 1, "port"), 70000),
    "port a bool": _changed(("valkey_instances", 1, "port"), True),
    "port a string": _changed(("valkey_instances", 1, "port"), "7101"),
    "primary port 70000": _changed(("valkey_instances", 1, "primary_port"), 70000),
    "sentinel port -1": _changed(("valkey_sentinel_ports", 2), -1),
    "sentinel ports not a list": _changed(("valkey_sentinel_ports",), 8100),
    "relative base dir": _changed(("valkey_base_dir",), "data/valkey"),
    "base dir with a newline": _changed(("valkey_base_dir",), "/srv/valkey\nport 0"),
    "base dir not a string": _changed(("valkey_base_dir",), ["/srv"]),
    "no instances": _changed(("valkey_instances",), []),
    "instance not a mapping": _changed(("valkey_instances", 0), 7100),
    "base port that pushes the sentinels past 65535": _changed(("valkey_instances", 0, "port"), 65000),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("deployment", list(BAD.values()), ids=list(BAD))
def test_a_bad_committed_deployment_is_refused_before_ansible_starts(tmp_path, deployment):
    out = tmp_path / "out"
    request = pipeline_render.RenderRequest(spec=SPEC, target="local", out=out)
    pipeline_render.render(request)
    (tmp_path / "out.valkey-data").mkdir()
    (out / "ansible" / "deployment.yml").write_text(yaml.safe_dump(deployment))
    messages: list[str] = []
    started = time.monotonic()
    with pytest.raises(InputError) as error:
        pipeline_plan.plan(pipeline_plan.PlanRequest(render=request, terraform="none"), messages.append)
    assert "deployment.yml" in str(error.value) + error.value.hint
    assert not any("running playbooks" in m for m in messages), messages
    assert time.monotonic() - started < 5, "refused before any Ansible run"
