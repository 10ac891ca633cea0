"""The spec is the boundary for untrusted input: every field is validated before anything renders.

A spec may come from a pull request, so each field is tried with hostile values (template and HCL
injection, ACL rule injection, control and line-separator characters, absurd sizes, wrong types); each
must be refused with a SpecError naming the field. A Hypothesis property checks that any mutation of a
golden spec either validates (and then round-trips) or raises SpecError, never anything else.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reproducer.errors import InputError, SourceError, SpecError
from reproducer.model import ServiceSpec, load_spec, spec_from_data
from tests.support import cli

GOLDEN = Path(__file__).parents[1] / "golden" / "specs"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "ovh" / "business_service.json"
BUSINESS: dict[str, Any] = yaml.safe_load((GOLDEN / "business.yaml").read_text())
PROJECT = "0123456789abcdef0123456789abcdef"

HCL_BLOCK = 'x"\nresource "null_resource" "pwn" {}\n#'
JINJA = "{{ lookup('pipe','id') }}"
#: Refused by every field, free text included: they break out of a line or blow up sizes.
LINE_BREAKERS = [HCL_BLOCK, "a\nb", "a\rb", "a\x00b", "a\u2028b", "a\u2029b", "a\x85b", "a\tb", "a\x1bb", "x" * 5000]
#: Quote-free Jinja that would still run a command if a renderer let Ansible template it.
QUOTELESS_JINJA = "{{lookup((dict(pipe=1)|list)[0],(dict(id=1)|list)[0])}}"
#: Refused by every identifier-like field: template syntax, quotes, spaces, empty.
TEMPLATES = [JINJA, '${file("/etc/passwd")}', "%{ for x in y }", "a'b", 'a"b', "a b", "", "a\u202eb"]
HOSTILE = [*LINE_BREAKERS, *TEMPLATES, QUOTELESS_JINJA, "${x}", "%{x}"]
IDS = [*HOSTILE, "../../etc/passwd", "ovh;id", "a/b", "a:b"]

#: (path in the spec, field path the error names); each refuses every value of IDS.
ID_FIELDS = [
    (("source", "provider"), "source.provider"),
    (("source", "project"), "source.project"),
    (("source", "service_id"), "source.service_id"),
    (("source", "region"), "source.region"),
    (("engine", "version"), "engine.version"),
    (("plan", "name"), "plan.name"),
    (("plan", "flavor"), "plan.flavor"),
    (("topology", "nodes", 0, "name"), "topology.nodes.0.name"),
    (("topology", "nodes", 0, "region"), "topology.nodes.0.region"),
    (("network", "private", "id"), "network.private.id"),
    (("network", "private", "openstack_id"), "network.private.openstack_id"),
    (("network", "private", "region"), "network.private.region"),
    (("network", "private", "vrack"), "network.private.vrack"),
    (("network", "private", "subnet", "id"), "network.private.subnet.id"),
    (("network", "private", "subnet", "gateway"), "network.private.subnet.gateway"),
    (("network", "private", "subnet", "allocation_start"), "network.private.subnet.allocation_start"),
    (("users", 0, "name"), "users.0.name"),
    (("users", 0, "categories", 0), "users.0.categories.0"),
    (("users", 0, "commands", 0), "users.0.commands.0"),
    (("configuration", 0, "source_name"), "configuration.0.source_name"),
    (("configuration", 0, "valkey_name"), "configuration.0.valkey_name"),
    (("backups", "regions", 0), "backups.regions.0"),
    (("backups", "time"), "backups.time"),
    (("maintenance_time",), "maintenance_time"),
    (("endpoints", 0, "component"), "endpoints.0.component"),
    (("endpoints", 0, "host"), "endpoints.0.host"),
    (("endpoints", 0, "scheme"), "endpoints.0.scheme"),
    (("features", 0, "name"), "features.0.name"),
    (("allow_list", 0, "cidr"), "allow_list.0.cidr"),
    (("network", "private", "subnet", "cidr"), "network.private.subnet.cidr"),
]
#: Key patterns and channels may hold '/', ':' or '..': only what breaks out of one ACL rule is refused.
PATTERN_FIELDS = [(("users", 0, "keys", 0), "users.0.keys.0"), (("users", 1, "channels", 0), "users.1.channels.0")]
FREE_TEXT_FIELDS = [
    (("source", "description"), "source.description"),
    (("plan", "memory_source"), "plan.memory_source"),
    (("network", "private", "name"), "network.private.name"),
    (("allow_list", 0, "description"), "allow_list.0.description"),
    (("features", 0, "note"), "features.0.note"),
]
CONFIG_VALUES = [
    *LINE_BREAKERS,
    *(t for t in TEMPLATES if t not in {"", "a b"}),
    "Ex\nenable-debug-command yes",
    " Ex",
    "Ex\\",
]
NOT_INT = [True, False, 1.5, "3", None, [], {}, float("nan")]
NUMBERS = [
    (("plan", "memory_gb"), "plan.memory_gb", [math.nan, math.inf, -math.inf, -1.0, 0, 1e308, True, "7", [7]]),
    (("topology", "shards"), "topology.shards", [100_000_000, 0, -1, 501, *NOT_INT]),
    (("topology", "replicas_per_shard"), "topology.replicas_per_shard", [-1, 6, 10**9, *NOT_INT]),
    (("topology", "nodes", 0, "port"), "topology.nodes.0.port", [0, -1, 65536, 99999, True, "20185", 1.5]),
    (("endpoints", 0, "port"), "endpoints.0.port", [0, -1, 65536, 99999, True, "20185", 1.5, None]),
    (("network", "private", "vlan_id"), "network.private.vlan_id", [-1, 4095, 10**6, True, "42", 1.5]),
    (("backups", "retention_days"), "backups.retention_days", [-1, 100_000, True, "3", 1.5, math.inf]),
    (("schema_version",), "schema_version", [True, "1", 1.0, None]),
    (("tls",), "tls", ["yes", "true", 1, 0, None, "on"]),
    (("deletion_protection",), "deletion_protection", ["no", 0, None]),
    (("endpoints", 0, "tls"), "endpoints.0.tls", ["true", 1]),
    (("features", 0, "in_use"), "features.0.in_use", ["true", 1]),
]
#: ACL rule injection: each value would add a rule (nopass, +@all, a password, a selector) if concatenated.
ACL_INJECTIONS = [
    (("users", 0, "keys", 0), "users.0.keys.0", "metrics:* nopass ~* +@all"),
    (("users", 0, "keys", 0), "users.0.keys.0", "metrics:*\tnopass"),
    (("users", 0, "keys", 0), "users.0.keys.0", "metrics:*\u00a0nopass"),
    (("users", 0, "keys", 0), "users.0.keys.0", "~*"),
    (("users", 0, "keys", 0), "users.0.keys.0", "%RW~*"),
    (("users", 0, "keys", 0), "users.0.keys.0", "&*"),
    (("users", 0, "keys", 0), "users.0.keys.0", "+@all"),
    (("users", 0, "keys", 0), "users.0.keys.0", ">secret"),
    (("users", 0, "keys", 0), "users.0.keys.0", "<secret"),
    (("users", 0, "keys", 0), "users.0.keys.0", "#" + "0" * 64),
    (("users", 0, "keys", 0), "users.0.keys.0", "(~* +@all)"),
    (("users", 0, "keys", 0), "users.0.keys.0", "-@all"),
    (("users", 1, "channels", 0), "users.1.channels.0", "* nopass"),
    (("users", 1, "channels", 0), "users.1.channels.0", "~*"),
    (("users", 0, "categories", 0), "users.0.categories.0", "+@read nopass"),
    (("users", 0, "categories", 0), "users.0.categories.0", "@all"),
    (("users", 0, "categories", 0), "users.0.categories.0", "+@"),
    (("users", 0, "categories", 0), "users.0.categories.0", "nopass"),
    (("users", 0, "commands", 0), "users.0.commands.0", "+info nopass"),
    (("users", 0, "commands", 0), "users.0.commands.0", "info"),
    (("users", 0, "commands", 0), "users.0.commands.0", "+@all"),
    (("users", 0, "commands", 0), "users.0.commands.0", "+config|"),
    (("users", 0, "commands", 0), "users.0.commands.0", "allcommands"),
    (("users", 0, "name"), "users.0.name", "-app"),
    (("users", 0, "name"), "users.0.name", "app nopass"),
    (("users", 0, "name"), "users.0.name", "x" * 200),
]


def mutated(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(BUSINESS)
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def strings(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(strings(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(strings(v) for v in node))
    return {node} if isinstance(node, str) else set()


def refused(data: dict[str, Any], field: str) -> str:
    with pytest.raises(SpecError) as caught:
        spec_from_data(data)
    message = str(caught.value)
    assert f"{field}:" in message, message
    assert caught.value.hint
    return message


def test_the_golden_specs_and_the_recorded_service_validate(recorded_spec):
    for path in GOLDEN.glob("*.yaml"):
        assert load_spec(path).to_yaml() == path.read_text()
    assert recorded_spec.source.project == PROJECT


@pytest.mark.parametrize("value", IDS, ids=repr)
@pytest.mark.parametrize(("path", "field"), ID_FIELDS, ids=[f for _, f in ID_FIELDS])
def test_identifiers_refuse_hostile_values(path, field, value):
    refused(mutated(path, value), field)


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize(("path", "field"), PATTERN_FIELDS, ids=[f for _, f in PATTERN_FIELDS])
def test_key_patterns_and_channels_refuse_hostile_values(path, field, value):
    refused(mutated(path, value), field)


@pytest.mark.parametrize("value", [v for v in IDS if v], ids=repr)
def test_a_node_flavor_is_a_flavor_or_empty(value):
    refused(mutated(("topology", "nodes", 0, "flavor"), value), "topology.nodes.0.flavor")
    assert spec_from_data(mutated(("topology", "nodes", 0, "flavor"), "")).topology.nodes[0].flavor == ""


def test_unknown_keys_are_named_without_their_content_or_a_terminal_escape():
    data = copy.deepcopy(BUSINESS) | {"x" * 5000: 1, "\x1b[31mred": 2}
    data["users"][0]["\u2028password"] = "hunter2-secret"
    message = refused(data, "users.0.<a key of 9 characters>")
    assert "<a key of 5000 characters>" in message and "xxxxxxxx" not in message and "red" not in message
    assert "\x1b" not in message and "\u2028" not in message and "hunter2" not in message and len(message) < 2000


@pytest.mark.parametrize("time", ["02:00:00\n", "2:00:00", "02:00", "24:00:00", "02:00:00 ", "\uff102:00:00"], ids=repr)
def test_a_time_of_day_is_the_whole_string(time):
    refused(mutated(("backups", "time"), time), "backups.time")
    refused(mutated(("maintenance_time",), time), "maintenance_time")


@pytest.mark.parametrize("value", LINE_BREAKERS, ids=repr)
@pytest.mark.parametrize(("path", "field"), FREE_TEXT_FIELDS, ids=[f for _, f in FREE_TEXT_FIELDS])
def test_free_text_is_one_bounded_line(path, field, value):
    refused(mutated(path, value), field)


@pytest.mark.parametrize(("path", "field"), FREE_TEXT_FIELDS, ids=[f for _, f in FREE_TEXT_FIELDS])
def test_free_text_keeps_quotes_and_template_syntax_for_the_renderers_to_escape(path, field):
    text = f"{JINJA} ${{x}} %{{y}} \"q\" 'q' \\ é"
    assert text in strings(spec_from_data(mutated(path, text)).to_dict())


@pytest.mark.parametrize("value", CONFIG_VALUES, ids=repr)
def test_configuration_values_cannot_add_a_directive(value):
    refused(mutated(("configuration", 0, "value"), value), "configuration.0.value")


def test_configuration_values_seen_at_ovh_are_accepted():
    for value in ("", "Ex", "KEA$lshzxetd", "allkeys-lru", "3600 1 300 100 60 10000", "pubsub 64mb 64mb 60", "rdb"):
        spec = spec_from_data(mutated(("configuration", 0, "value"), value))
        assert value in [c.value for c in spec.configuration]


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [(p, f, v) for p, f, values in NUMBERS for v in values],
    ids=[f"{f}={v!r}" for _, f, values in NUMBERS for v in values],
)
def test_numbers_and_booleans_are_finite_bounded_and_of_their_type(path, field, value):
    refused(mutated(path, value), field)


@pytest.mark.parametrize(("path", "field", "value"), ACL_INJECTIONS, ids=[repr(v) for _, _, v in ACL_INJECTIONS])
def test_acl_rule_injection_is_impossible(path, field, value):
    refused(mutated(path, value), field)


def test_acl_values_seen_at_ovh_and_valkey_are_accepted():
    data = mutated(("users", 0, "keys"), ["{user}:*", "a[bc]?\\*", "x~y", "*"])
    data["users"][0]["commands"] = ["+info", "-flushall", "+client|no-evict", "+config|get", "+json.get", "+select|0"]
    data["users"][0]["categories"] = ["+@read", "-@dangerous", "+@sortedset"]
    data["users"][0]["name"] = "svc.app-ro_2@team"
    user = next(u for u in spec_from_data(data).users if u.name == "svc.app-ro_2@team")
    assert user.acl_rules.split() == ["on", "~{user}:*", "~a[bc]?\\*", "~x~y", "~*", *user.categories, *user.commands]


@pytest.mark.parametrize("cidr", ["fe80::1%a\nb", "fe80::%eth0/64", "10.0.0.0/24 nopass", "::/0\n#"], ids=repr)
def test_cidrs_cannot_carry_a_scope_or_a_line(cidr):
    refused(mutated(("allow_list", 0, "cidr"), cidr), "allow_list.0.cidr")


def test_cidrs_of_both_families_are_normalised():
    data = mutated(("allow_list", 0, "cidr"), "2001:db8::1/64")
    data["allow_list"][1]["cidr"] = " 10.1.2.3/8 "
    assert {a.cidr for a in spec_from_data(data).allow_list} >= {"2001:db8::/64", "10.0.0.0/8"}


@pytest.mark.parametrize(
    ("key", "index", "field", "named"),
    [
        ("users", "name", "users", "'app'"),
        ("configuration", "source_name", "configuration", "'redis_timeout'"),
        ("allow_list", "cidr", "allow_list", "'10.0.0.0/24'"),
    ],
)
def test_duplicates_are_refused(key, index, field, named):
    data = copy.deepcopy(BUSINESS)
    twin = copy.deepcopy(next(i for i in data[key] if repr(i[index]) == named))
    if key == "allow_list":
        twin["cidr"] = "10.0.0.7/24"  # the same network once normalised
    data[key].append(twin)
    message = refused(data, field)
    assert "duplicate" in message and named in message


def test_duplicate_node_names_are_refused():
    data = copy.deepcopy(BUSINESS)
    data["topology"]["nodes"][1]["name"] = data["topology"]["nodes"][0]["name"]
    assert "duplicate" in refused(data, "topology.nodes")


def test_ovh_ids_have_their_format_other_providers_a_safe_charset():
    refused(mutated(("source", "project"), "0123456789abcdef"), "source.project")
    refused(mutated(("source", "project"), PROJECT.upper()), "source.project")
    refused(mutated(("source", "service_id"), "another-service"), "source.service_id")
    refused(mutated(("source", "provider"), "OVH cloud"), "source.provider")
    data = mutated(("source", "provider"), "scaleway")
    data["source"] |= {"project": "proj-42", "service_id": "redis.main-1", "region": "fr-par"}
    assert spec_from_data(data).source.service_id == "redis.main-1"


def test_endpoint_components_may_be_camel_case():
    assert spec_from_data(mutated(("endpoints", 0, "component"), "kafkaSASL")).endpoints[0].component == "kafkaSASL"


def test_region_codes_of_every_ovh_form_validate():
    for region in ("GRA", "GRA11", "SBG5", "DE1", "UK1", "BHS5", "WAW1", "EU-WEST-PAR", "AP-SOUTH-MUM", "eu-west-3"):
        assert spec_from_data(mutated(("source", "region"), region)).source.region == region
    for region in ("-GRA", "GRA-", "GR A", "GRA--1", "G" * 40):
        refused(mutated(("source", "region"), region), "source.region")


def test_an_error_names_the_field_and_the_value_and_never_a_secret():
    message = refused(mutated(("topology", "shards"), 100_000_000), "topology.shards")
    assert "100000000" in message
    data = copy.deepcopy(BUSINESS)
    data["users"][0]["password"] = "hunter2-secret"
    assert "hunter2-secret" not in refused(data, "users.0.password")
    data = mutated(("endpoints", 0, "host"), "rediss://app:hunter2-secret@h")
    assert "hunter2-secret" not in refused(data, "endpoints.0.host")
    for field, value in (("commands", ">hunter2-secret"), ("keys", "x:* >hunter2-secret"), ("categories", "#hunter2")):
        assert "hunter2" not in refused(mutated(("users", 0, field, 0), value), f"users.0.{field}.0")
    long = refused(mutated(("source", "service_id"), "y" * 5000), "source.service_id")
    assert len(long) < 1000


def test_many_errors_are_summarised():
    data = mutated(("users", 0, "keys"), [f"k {i}" for i in range(200)])
    message = refused(data, "users.0.keys.0")
    assert "more" in message and len(message) < 4000


def test_oversized_lists_are_refused():
    refused(mutated(("users", 0, "keys"), [f"k{i}:*" for i in range(5000)]), "users.0.keys")
    nodes = [{"name": f"n{i}.example", "region": "GRA", "port": 1, "flavor": "db1-7"} for i in range(5000)]
    refused(mutated(("topology", "nodes"), nodes), "topology.nodes")


# ---- load_spec: the file itself is hostile --------------------------------------------------------


def write(tmp_path: Path, content: bytes | str) -> Path:
    path = tmp_path / "spec.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    + ["users: *i"]
)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"schema_version: 1\ndescription: caf\xe9\n", "not UTF-8"),
        (b"\xff\xfe\x00\x00", "not UTF-8"),
        ("# padding\n" * 120_000, "larger than"),
        (BILLION_LAUGHS, "alias"),
        ("[" * 100_000, "nested"),
        ("a: 1\n---\nb: 2\n", "one document"),
        ("- 1\n", "not a mapping"),
        ("just a string\n", "not a mapping"),
        ("", "empty"),
        ("schema_version: " + "9" * 5000 + "\n", "integer"),
        ("schema_version: 1\nschema_version: 2\n", "duplicate key"),
        ("!!python/object/apply:os.system ['id']\n", "not valid YAML"),
        ("a: !!binary AAAA\n", "valid"),
        ("a: 2025-01-01\n", "valid"),
    ],
    ids=[
        "latin-1",
        "utf-32",
        "huge",
        "billion-laughs",
        "deep",
        "two-documents",
        "list",
        "scalar",
        "empty",
        "huge-int",
        "duplicate-key",
        "python-tag",
        "binary",
        "date",
    ],
)
def test_a_hostile_file_is_a_spec_error(tmp_path, content, expected):
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, content))
    assert expected in str(caught.value), caught.value
    assert caught.value.hint and str(tmp_path) in caught.value.message


def test_the_cli_says_error_and_hint_for_a_non_utf8_spec(tmp_path):
    path = write(tmp_path, (GOLDEN / "business.yaml").read_bytes().replace(b"cache-prod", b"cach\xe9"))
    result = cli.run("render", "--target", "aws", "--spec", path, "--out", "o", cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr and "hint:" in result.stderr and "Traceback" not in result.stderr
    assert "not UTF-8" in " ".join(result.stderr.split())


# ---- property: any mutation validates or is a SpecError -----------------------------------------


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found += paths(child, (*prefix, key))
    return found


ALL_PATHS = paths(BUSINESS)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from([JINJA, HCL_BLOCK, "metrics:* nopass ~* +@all", "fe80::1%a\nb", "GRA", "db1-7", "*", "+@all"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(ALL_PATHS), st.sampled_from(["set", "delete", "append"]), VALUES),
        min_size=1,
        max_size=3,
    )
)
def test_any_mutation_validates_or_is_a_spec_error(mutations):
    data = copy.deepcopy(BUSINESS)
    for path, action, value in mutations:
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            if action == "delete":
                del parent[path[-1]]
            elif action == "append" and isinstance(parent[path[-1]], list):
                parent[path[-1]].append(value)
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    try:
        spec = spec_from_data(data)
    except SpecError as exc:
        assert exc.hint and "Traceback" not in str(exc)
        return
    assert isinstance(spec, ServiceSpec)
    assert spec_from_data(yaml.safe_load(spec.to_yaml())) == spec


@settings(max_examples=150, deadline=None)
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_file_content_loads_or_is_a_spec_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_bytes(content)
    try:
        load_spec(path)
    except SpecError as exc:
        assert exc.hint


# ---- the OVH source: ovh.conf and API answers are untrusted -----------------------------------------


RECORDED = json.loads(FIXTURE.read_text())


def build(**changes: Any):
    from reproducer.sources.ovh import build_spec

    replaced = changes.pop("service", {})
    service = None if replaced is None else copy.deepcopy(RECORDED["service"]) | replaced
    arguments: dict[str, Any] = {
        "project": PROJECT,
        "service": service,
        "nodes": copy.deepcopy(RECORDED["service"]["nodes"]),
        "users": copy.deepcopy(RECORDED["users"]),
        "advanced": dict(RECORDED["advancedConfiguration"]),
        "network": None,
        "flavor_memory": {},
    }
    return build_spec(**(arguments | changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"service": {"id": 42}},
        {"service": {"id": "x\nresource {}"}},
        {"service": {"flavor": None}},
        {"service": {"plan": ["business"]}},
        {"service": {"version": {"major": 8}}},
        {"service": {"ipRestrictions": [{"ip": "10.0.0.0/24 nopass"}]}},
        {"service": {"ipRestrictions": "10.0.0.0/24"}},
        {"service": {"endpoints": [{"domain": "h", "port": "x"}]}},
        {"service": {"endpoints": [{"port": 1}]}},
        {"service": {"backups": {"retentionDays": -3}}},
        {"service": {"maintenanceTime": "04:00:00\nx"}},
        {"nodes": [{"name": "n1.example"}]},
        {"nodes": {"a": 1}},
        {"nodes": ["node"]},
        {"users": [{"username": "app", "keys": ["app:* nopass +@all"]}]},
        {"users": [{"username": "{{ lookup('pipe','id') }}"}]},
        {"users": [{"name": "app"}]},
        {"users": None},
        {"advanced": ["redis_timeout"]},
        {"advanced": {"redis_timeout": "300\nenable-debug-command yes"}},
        {"advanced": {"redis timeout": "300"}},
        {"project": "../../me"},
        {"service": None},
    ],
    ids=repr,
)
def test_a_malformed_api_answer_is_a_source_error(changes):
    with pytest.raises(SourceError) as caught:
        build(**changes)
    assert caught.value.hint and "API" in caught.value.message


def _cli_inspect(tmp_path: Path, conf: bytes) -> subprocess.CompletedProcess[str]:
    (tmp_path / "ovh.conf").write_bytes(conf)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVH_")} | {"HOME": str(tmp_path)}
    return cli.run("inspect", "--project", PROJECT, "--endpoint", "ovh-eu", cwd=tmp_path, env=env, timeout=60)


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        (b"[ovh-eu]\napplication_key=k\napplication_secret=caf\xe9-s3cret\n", "not UTF-8"),
        (b"[ovh-eu]\napplication_key=k\n[ovh-eu]\napplication_key=k2\n", "section [ovh-eu] appears twice"),
        (b"[ovh-eu]\napplication_key=k\napplication_key=k2\n", "application_key appears twice"),
        (b"application_secret=s3cret\n", "no [section] header"),
        (b"[ovh-eu]\n  s3cret continuation\nname\n", "line"),
    ],
    ids=["latin-1", "duplicate-section", "duplicate-option", "no-section", "bad-line"],
)
def test_a_malformed_ovh_conf_is_an_input_error_without_a_secret(tmp_path, conf, expected):
    result = _cli_inspect(tmp_path, conf)
    output = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in output and "error:" in output and "hint:" in output
    assert expected in output and "ovh.conf" in output
    assert "s3cret" not in output


def test_an_unreadable_or_malformed_explicit_config_is_an_input_error(tmp_path):
    from reproducer.sources.ovh import make_client

    bad = tmp_path / "explicit.conf"
    bad.write_bytes(b"[ovh-eu]\napplication_key=k\n[ovh-eu]\n")
    with pytest.raises(InputError, match="appears twice"):
        make_client("ovh-eu", bad)
    bad.write_text("[ovh-eu]\napplication_key=k\n")
    bad.chmod(0)
    try:
        if os.access(bad, os.R_OK):
            pytest.skip("running as root: every file is readable")
        with pytest.raises(InputError, match="cannot read"):
            make_client("ovh-eu", bad)
    finally:
        bad.chmod(0o600)


@pytest.mark.parametrize("secret", ["caf\u20ac", "two words", "line\nbreak", "tab\there"])
def test_credentials_the_http_layer_cannot_send_are_an_input_error(secret):
    from reproducer.sources.ovh import make_client

    credentials = {"application_key": "ak", "application_secret": "as", "consumer_key": secret}
    with pytest.raises(InputError) as caught:
        make_client("ovh-eu", None, credentials)
    assert secret not in caught.value.message and "consumer_key" in caught.value.message


SECRET = "s3cr3t-4f9a2c7e"


@pytest.mark.parametrize(
    "content",
    [
        f"[default]\napplication_secret={SECRET}\n",
        f"password: {SECRET}\n  bad: indent\n",
        f"users:\n- name: app\n  password: {SECRET}\n",
        f'{{"{SECRET}": 1}}\n',
        f"a: 1\na: {SECRET}\n",
        f"{SECRET}: 1\n{SECRET}: 2\n",
        f"a: &x {SECRET}\nb: [*x]\n",
        f"k: v\n---\ntoken: {SECRET}\n",
        f"key: !{SECRET} x\n",
    ],
    ids=[
        "ini",
        "bad-indent",
        "password-field",
        "secret-key",
        "duplicate",
        "duplicate-secret-key",
        "alias",
        "two",
        "tag",
    ],
)
def test_a_file_that_is_not_a_spec_is_never_echoed(tmp_path, content):
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, content))
    assert SECRET[:8] not in str(caught.value), caught.value


def test_a_mapping_of_many_keys_is_checked_for_duplicates_in_linear_time(tmp_path):
    path = write(tmp_path, "".join(f"k{i}: {i}\n" for i in range(10_000)) + "k7: again\n")
    with pytest.raises(SpecError, match="duplicate key <a key of 2 characters>"):
        load_spec(path)
