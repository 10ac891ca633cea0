"""Service spec: validation, stable ordering, byte-stable YAML round trip."""

import random

import pytest

from reproducer.errors import SpecError
from reproducer.model import load_spec, spec_from_data


@pytest.fixture
def spec(recorded_spec):
    return recorded_spec


def test_yaml_round_trip_is_byte_stable(spec, tmp_path):
    first = spec.to_yaml()
    path = tmp_path / "spec.yaml"
    path.write_text(first)
    again = load_spec(path)
    assert again == spec
    assert again.to_yaml() == first


def test_json_is_yaml_too(spec, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    assert load_spec(path).to_yaml() == spec.to_yaml()


def test_order_of_lists_does_not_change_output(spec):
    data = spec.to_dict()
    for key in ("allow_list", "users", "configuration"):
        random.Random(3).shuffle(data[key])
    data["allow_list"].reverse()
    assert spec_from_data(data).to_yaml() == spec.to_yaml()


def test_unknown_schema_version_is_refused_with_a_fix(spec):
    data = {**spec.to_dict(), "schema_version": 99}
    with pytest.raises(SpecError, match="unknown schema_version 99.*upgrade reproducer"):
        spec_from_data(data)


def test_invalid_cidr_names_the_field(spec):
    data = spec.to_dict()
    data["allow_list"][0]["cidr"] = "10.0.0.300/24"
    with pytest.raises(SpecError, match=r"allow_list\.0\.cidr.*not an IP network"):
        spec_from_data(data)


def test_unknown_field_is_refused(spec):
    with pytest.raises(SpecError, match="password"):
        spec_from_data({**spec.to_dict(), "password": "x"})


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: [1\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(SpecError, match="not a mapping"):
        load_spec(tmp_path / "list.yaml")
