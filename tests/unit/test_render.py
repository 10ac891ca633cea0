"""Rendering: goldens, determinism, escaping, sizing, ACL strings, complete compatibility reports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reproducer.model import User, load_spec
from reproducer.targets import get_target, target_names
from reproducer.targets.base import RenderOptions
from reproducer.targets.compat import ATTRIBUTES
from reproducer.targets.render import align, hcl_ident, hcl_string, hcl_value, slug
from reproducer.targets.sizing import choose
from tests.golden.regen import HERE, SCENARIOS, golden_dir, rendered

#: Read at collection: a target registered before the tests are collected is tested like the others.
TARGETS = target_names()
CASES = [(t, s) for t in TARGETS for s in SCENARIOS]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("target", "scenario"), CASES)
def test_output_matches_the_committed_golden_files(target, scenario):
    files = rendered(target, scenario)
    golden = golden_dir(target, scenario)
    on_disk = {p.relative_to(golden).as_posix(): p.read_text() for p in golden.rglob("*") if p.is_file()}
    assert files == on_disk, "run `make golden` and review the diff"


@pytest.mark.parametrize("target", TARGETS)
def test_rendering_has_no_timestamp(target):
    text = "".join(rendered(target, "business").values())
    assert not re.search(r"20\d\d-\d\d-\d\d", text)


#: Renders every registered target and scenario and prints them as one JSON document.
_RENDER_ALL = (
    "import json; from reproducer.targets import target_names; from tests.golden.regen import SCENARIOS, rendered; "
    "print(json.dumps({f'{t}/{s}': rendered(t, s) for t in target_names() for s in SCENARIOS}, sort_keys=True))"
)


def test_renders_in_processes_with_different_hash_seeds_are_byte_identical():
    """Set and dict iteration order changes with the hash seed: two renders in one process cannot show that."""
    outputs = []
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", _RENDER_ALL], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(run.stdout))
    targets = {key.partition("/")[0] for key in outputs[0]}
    assert targets and targets <= set(TARGETS) and len(outputs[0]) == len(targets) * len(SCENARIOS)
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize(("target", "scenario"), CASES)
def test_every_attribute_user_and_setting_has_a_row(target, scenario):
    spec_file, _options = SCENARIOS[scenario]
    spec = load_spec(HERE / "specs" / spec_file)
    report = json.loads(rendered(target, scenario)["compatibility.json"])
    attributes = {row["attribute"] for row in report["rows"]}
    assert set(ATTRIBUTES) <= attributes
    assert {f"users.{u.name}" for u in spec.users} <= attributes
    assert {f"configuration.{c.source_name}" for c in spec.configuration} <= attributes
    assert sum(report["summary"].values()) == len(report["rows"])
    assert {row["category"] for row in report["rows"]} == {"core", "ovh_implementation", "specific"}


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_literal_in_rendered_files(target):
    for name, text in rendered(target, "business").items():
        assert not re.search(r'password\w*\s*=\s*"', text), name
        assert not re.search(r'passwords\s*=\s*\["', text), name


def test_hcl_escaping():
    assert hcl_string('a "b" ${c} %{d} \\ \n\t') == '"a \\"b\\" $${c} %%{d} \\\\ \\n\\t"'
    assert hcl_value([1, True, None, "x"]) == '[1, true, null, "x"]'
    assert hcl_value({"k": "v"}) == '{ "k" = "v" }'
    assert hcl_ident("Cache-Prod 2") == "cache_prod_2" and hcl_ident("9lives") == "r_9lives"
    assert slug("Cache Prod!") == "cache-prod" and slug("42") == "v-42"


def test_every_interpolation_is_escaped_and_non_hcl_templates_refuse_unmarked_values():
    from reproducer.targets.render import Safe, environment

    hcl = environment(True).from_string('x = {{ v }}\ny = {{ n }}\nz = {{ s }}\nresource "a" "{{ i | ident }}" {}')
    out = hcl.render(v='a"\n}${b}', n=3, s=Safe('"raw"'), i="App.RO")
    assert out == 'x = "a\\"\\n}$${b}"\ny = 3\nz = "raw"\nresource "a" "app_ro" {}'
    strict = environment(False).from_string("{{ v }}")
    with pytest.raises(TypeError, match="unescaped str"):
        strict.render(v="a")
    assert strict.render(v=Safe("# ok")) == "# ok" and strict.render(v=7) == "7"


def test_align_matches_terraform_fmt_rules():
    text = 'a {\n  x = 1\n  longer = 2\n  m = {\n    k = "v"\n  }\n  y = 3\n}\n'
    assert align(text) == 'a {\n  x      = 1\n  longer = 2\n  m = {\n    k = "v"\n  }\n  y = 3\n}\n'


def test_sizing_picks_the_smallest_node_that_holds_a_shard():
    AWS, GCP, OVH = (get_target(name).nodes for name in ("aws", "gcp", "ovh"))
    assert choose(AWS, 7, 1).size.name == "cache.r7g.large"
    resharded = choose(AWS, 7, 3)
    assert resharded.needed_gb == pytest.approx(2.8) and resharded.size.name == "cache.t4g.medium"
    assert choose(GCP, 15, 1).size.name == "STANDARD_LARGE"
    assert choose(OVH, 7, 1).size.name == "db1-7"
    too_big = choose(OVH, 500, 1)
    assert not too_big.fits and "no node that large" in too_big.note


def test_acl_string_is_built_from_ovh_parts():
    user = User(name="app", categories=("+@read", "-@dangerous"), commands=("+info",), keys=("app:*",), channels=("*",))
    assert user.acl_rules == "on ~app:* &* +@read -@dangerous +info"


def test_resharding_changes_the_topology_and_is_reported():
    report = json.loads(rendered("aws", "business-3x1")["compatibility.json"])
    shards = next(row for row in report["rows"] if row["attribute"] == "topology.shards")
    assert shards["support"] == "approximated" and "3 shard" in shards["note"]
    assert "num_node_groups            = 3" in rendered("aws", "business-3x1")["terraform/main.tf"]
    ovh = json.loads(rendered("ovh", "business-3x1")["compatibility.json"])
    assert next(r for r in ovh["rows"] if r["attribute"] == "topology.shards")["support"] == "unsupported"


def test_unknown_target_names_the_known_ones():
    from reproducer.errors import InputError

    with pytest.raises(InputError, match="unknown target 'alibaba'") as caught:
        get_target("alibaba")
    assert "aws" in caught.value.hint


def test_render_writes_a_whole_directory_and_keeps_what_it_did_not_write(tmp_path):
    from reproducer.pipeline import render as pipeline_render

    out = tmp_path / "out"
    request = pipeline_render.RenderRequest(spec=HERE / "specs" / "business.yaml", target="gcp", out=out)
    pipeline_render.render(request)
    (out / "terraform" / "main.tf").write_text("stale")
    (out / "notes.txt").write_text("mine")
    pipeline_render.render(request)
    assert (out / "notes.txt").read_text() == "mine", "a render removes only files of its manifest"
    assert (out / "terraform" / "main.tf").read_text() == rendered("gcp", "business")["terraform/main.tf"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_bad_spec_leaves_nothing_behind(tmp_path):
    from reproducer.errors import SpecError
    from reproducer.pipeline import render as pipeline_render

    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 7\n")
    with pytest.raises(SpecError):
        pipeline_render.render(pipeline_render.RenderRequest(spec=bad, target="aws", out=tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"plan": {"name": "business", "flavor": "db9-77", "memory_gb": None, "memory_source": "unknown flavor"}},
            "memory of flavor 'db9-77' is unknown",
        ),
        ({"engine": {"name": "valkey", "version": "6.2"}}, "engine version '6.2'"),
    ],
)
def test_unknown_flavor_or_version_is_refused_not_guessed(change, message):
    from reproducer.errors import InputError
    from reproducer.model import spec_from_data

    data = load_spec(HERE / "specs" / "business.yaml").to_dict() | change
    with pytest.raises(InputError, match=message):
        get_target("aws").render(spec_from_data(data), RenderOptions())
