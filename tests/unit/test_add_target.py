"""The "Adding a target" recipe of docs/architecture.md, followed for a target registered in the tests only.

``tests/add_target/`` holds the dummy target: its module (facts and render), its templates and its registry
line. Registering that line is all it takes: the existing parametrised tests, run with the dummy registered
before collection, render it, compare it with its golden files, check it against hostile values, and validate
and plan it with real Terraform against the real ``hashicorp/random`` schema. None of those tests names it.

The registry must be the single source for this to pass: a hard-coded target list in a test, a provider
version written outside the target, or a mirror or schema table that does not read the registry each make one
of these tests fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reproducer.errors import InputError, SandboxError
from reproducer.offline import available_providers, install_mirror, offline_provider
from reproducer.offline.subset import build_subset, write_subsets
from reproducer.targets import TARGETS, TargetEntry, get_target, target_names, terraform_providers
from reproducer.targets.base import RenderOptions, TerraformProvider
from tests.add_target.dummy import ENTRY, PROVIDER
from tests.golden.regen import HERE, SCENARIOS, golden_dir, rendered

ROOT = Path(__file__).resolve().parents[2]
#: The parametrised tests that must pick the dummy up by themselves (none of them is edited for it).
EXISTING = (
    "tests/unit/test_render.py",
    "tests/unit/test_render_injection.py",
    "tests/integration/test_render_terraform.py",
)
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")
PLUGIN = ("-p", "tests.add_target.plugin", "-k", "dummy")


@pytest.fixture
def dummy(monkeypatch):
    """The recipe's "one registry line", for this test only."""
    monkeypatch.setitem(TARGETS, ENTRY.name, ENTRY)
    return ENTRY.name


def test_the_registry_line_is_all_the_code_needs(dummy):
    assert dummy in target_names() and dummy not in target_names(applicable=True)
    target = get_target(dummy)
    assert target.terraform_providers == ("random",)
    versions = rendered(dummy, "business")["terraform/versions.tf"]
    assert f'source  = "{PROVIDER.source}"' in versions and 'version = "~> 3.9"' in versions
    assert "random" in terraform_providers() and "random" in available_providers()
    assert offline_provider("random").version == PROVIDER.version


def test_the_dummy_is_registered_in_the_tests_only():
    assert "dummy" not in target_names()
    assert not (HERE / "dummy").exists()
    with pytest.raises(InputError, match="unknown target 'dummy'"):
        get_target("dummy")


def test_the_target_facts_choose_its_size_and_region(dummy):
    files = get_target(dummy).render(_spec(), RenderOptions(region="vault-west"))
    assert 'region  = "vault-west"' in files.files["terraform/main.tf"]
    with pytest.raises(InputError, match="not a region name of Dummy password vault"):
        get_target(dummy).render(_spec(), RenderOptions(region="eu-west-3"))
    assert 'size    = "vault-16"' in rendered(dummy, "business")["terraform/main.tf"]


def _spec():
    from reproducer.model import load_spec

    return load_spec(HERE / "specs" / SCENARIOS["business"][0])


# -- the offline providers and the schema subsets read the registry --------------------------------------------------

VAULT = "registry.terraform.io/reproducer-test/vault"


class VaultTarget:
    """A target whose provider no committed schema describes."""

    name = "vault"
    title = "Vault"
    providers = (TerraformProvider(VAULT, "0.1.0", resources=("vault_secret",)),)
    terraform_providers = ("vault",)


@pytest.fixture
def vault(monkeypatch):
    monkeypatch.setitem(TARGETS, "vault", TargetEntry("vault", f"{__name__}:VaultTarget"))


def test_a_registered_provider_without_a_committed_schema_fails_the_mirror(vault, tmp_path):
    assert "vault" in available_providers()
    with pytest.raises(SandboxError, match="schema subset of the Terraform provider 'vault'"):
        install_mirror(tmp_path, ["vault"])


def test_the_subset_tool_keeps_the_types_the_target_lists(vault, tmp_path):
    block = {"block": {"attributes": {"name": {"type": "string", "required": True}}}}
    full = {
        "format_version": "1.0",
        "provider_schemas": {
            VAULT: {
                "provider": {"block": {"attributes": {"alias": {"type": "string"}}}},
                "resource_schemas": {"vault_secret": block, "vault_other": block},
            }
        },
    }
    (tmp_path / "vault.json").write_text(json.dumps(full))
    [written] = write_subsets(tmp_path, tmp_path / "out", ["vault"])
    subset = json.loads(written.read_text())
    assert list(subset["provider_schemas"][VAULT]["resource_schemas"]) == ["vault_secret"]
    assert subset["x_reproducer"]["version"] == "0.1.0"


class OlderRandomTarget(VaultTarget):
    """A target that requires the dummy's provider at another version."""

    name = "older"
    providers = (TerraformProvider(PROVIDER.address, "3.0.0", resources=("random_password",)),)


def test_two_targets_describing_one_provider_differently_are_refused(dummy, monkeypatch):
    monkeypatch.setitem(TARGETS, "older", TargetEntry("older", f"{__name__}:OlderRandomTarget"))
    with pytest.raises(InputError, match="'random' twice, differently"):
        terraform_providers()


@pytest.mark.parametrize("key", sorted(terraform_providers()))
def test_every_registered_provider_has_its_committed_subset_with_exactly_its_types(key):
    provider = offline_provider(key)
    committed = json.loads(provider.schema.read_text())
    assert build_subset(key, committed, committed["x_reproducer"]["generated_from"]) == committed


# -- the existing parametrised tests pick the dummy up ---------------------------------------------------------------


@pytest.mark.integration
def test_the_existing_parametrised_tests_render_validate_and_plan_the_dummy(tmp_path):
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [*PYTEST, *PLUGIN, f"--junitxml={report}", *EXISTING],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    outcomes = {case.get("name"): [child.tag for child in case] for case in cases}
    assert all(not tags for tags in outcomes.values()), {name: tags for name, tags in outcomes.items() if tags}
    ran = set(outcomes)
    for scenario in SCENARIOS:
        assert f"test_output_matches_the_committed_golden_files[dummy-{scenario}]" in ran
        assert f"test_golden_output_is_fmt_clean_valid_and_plans_what_the_spec_says[dummy-{scenario}]" in ran
    assert "test_hostile_values_everywhere_plan_exactly_the_benign_resources[dummy]" in ran
    assert "test_hostile_strings_in_every_reachable_field_stay_data[dummy]" in ran
    assert "test_every_attribute_user_and_setting_has_a_row[dummy-business]" in ran
    assert not golden_dir("dummy", "business").exists(), "the dummy's golden files were scratch files"


def admits(constraint: str, version: str) -> bool:
    """Whether a Terraform ``~> X.Y`` (or ``~> X.Y.Z``) constraint admits ``version``."""
    operator, _, floor = constraint.partition(" ")
    assert operator == "~>", constraint
    low = tuple(int(part) for part in floor.split("."))
    have = tuple(int(part) for part in version.split("."))
    return have >= low and have[: len(low) - 1] == low[:-1]


@pytest.mark.parametrize("key", sorted(terraform_providers()))
def test_the_rendered_constraint_admits_the_version_the_files_are_checked_with(key):
    provider = terraform_providers()[key]
    assert admits(provider.required_version, provider.version), (provider.required_version, provider.version)


def test_the_constraint_defaults_to_the_minor_version():
    assert TerraformProvider("registry.terraform.io/x/y", "4.61.2", resources=()).required_version == "~> 4.61"
    assert not admits("~> 6.0", "7.0.0") and admits("~> 6.0", "6.69.1") and not admits("~> 2.17", "2.16.9")
