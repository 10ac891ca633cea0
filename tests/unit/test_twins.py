"""The twin machinery: Valkey fleets shaped like resources in a world, the serve module, the twin mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from reproducer.twins import install_twins, running_processes, trusted_ca
from reproducer.twins import valkey as twin_valkey
from reproducer.twins.base import TwinError, TwinWorld
from reproducer.twins.serve import twins_of

TYPE = "test_cache"


@pytest.fixture
def world(tmp_path):
    world = TwinWorld(tmp_path / "world")
    yield world
    twin_valkey.stop_all(world)


def test_acl_rules_that_set_passwords_or_are_not_printable_are_refused():
    assert twin_valkey.check_acl_rules("on ~app:* &* +@all -@dangerous") == [
        "on",
        "~app:*",
        "&*",
        "+@all",
        "-@dangerous",
    ]
    for rules in ("on >secret ~*", "on #0123 ~*", "nopass", "on <x", "on ~*\x00"):
        with pytest.raises(TwinError, match="invalid ACL rule"):
            twin_valkey.check_acl_rules(rules)


def test_serve_finds_no_twins_for_machinery_unknown_or_malformed_keys():
    for key in ("valkey", "base", "no_such_cloud", "../aws", "Aws", ""):
        assert twins_of(key) == ((), ())


def test_the_world_has_one_ca_made_once(world):
    first = twin_valkey.world_ca(world)
    content = first.cert.read_bytes()
    assert twin_valkey.world_ca(world).cert.read_bytes() == content
    assert first.key.stat().st_mode & 0o077 == 0


def test_install_twins_writes_wrappers_running_the_twin_serve_module_in_the_world(tmp_path):
    config = install_twins(tmp_path / "twins", ["aws", "random"])
    wrappers = sorted((tmp_path / "twins" / "mirror").rglob("terraform-provider-*"))
    assert config.read_text().count("filesystem_mirror") == 1
    assert len(wrappers) == 2
    world = (tmp_path / "twins" / "world").resolve()
    for wrapper in wrappers:
        text = wrapper.read_text()
        assert "-m reproducer.twins.serve" in text
        assert f"REPRODUCER_TWIN_ROOT={world}; export REPRODUCER_TWIN_ROOT" in text
    assert trusted_ca(tmp_path / "twins") == world / "ca.pem"
    assert b"BEGIN CERTIFICATE" in (world / "ca.pem").read_bytes()


def test_ids_that_escape_the_world_are_refused(world):
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(TwinError):
            twin_valkey.nodes(world, TYPE, bad)


def test_a_world_without_records_runs_nothing(tmp_path):
    assert running_processes(Path(tmp_path)) == []


def test_the_aws_module_serves_its_twins():
    resources, data_sources = twins_of("aws")
    assert {t.type_name for t in resources} >= {"aws_elasticache_replication_group", "aws_elasticache_user"}
    assert [t.type_name for t in data_sources] == ["aws_availability_zones"]
