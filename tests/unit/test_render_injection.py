"""Rendered files can never carry injected code, whatever a spec holds (issue 11, items 1, 2, 3 and 10).

Hostile specs are built with ``model_copy`` (no validation), so these tests hold however strict the spec
model is: escaping and the render's own checks are the defence in depth. For every target and every string
field of the spec that reaches a rendered file, each hostile payload must either be refused with an
InputError or land as data only: inside an HCL string literal (the HCL skeleton, every token outside string
contents, is the benign render's), in a YAML scalar tagged ``!unsafe`` that loads back with the payload
intact, never in the generated Python or ``ansible.cfg``.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import pytest
import yaml

from reproducer.errors import InputError
from reproducer.model import AllowedCidr, ConfigItem, ServiceSpec, User, load_spec
from reproducer.targets import get_target, target_names
from reproducer.targets.base import RenderOptions
from reproducer.untrusted import load_ansible_yaml
from tests.golden.regen import HERE
from tests.support.hostile import MARK, Path_, render, replaced, string_paths

PAYLOADS = (
    '\nresource "x" "y" {}\n',
    '" }\nresource "x" "y" {}\n# ',
    '${file("/etc/passwd")}',
    "%{ for x in [1] }${x}%{ endfor }",
    "{{ lookup('pipe','id') }}",
    "''' + __import__('os').system('id') + '''",
    '""" + __import__("os").system("id") + """',
    '\\" */ /* // \r\n[defaults]\nx = %(y)s',
)


def benign() -> ServiceSpec:
    return load_spec(HERE / "specs" / "business.yaml")


def reachable(target: str) -> dict[Path_, dict[str, str]]:
    """String fields whose (benign, marked) value shows in some file of ``target``'s render, with that render.

    That render is the baseline of the field's hostile renders: a benign change of the same field (renaming the
    ``default`` user, say) may legitimately change the structure, a hostile one must not change it further.
    """
    spec, found = benign(), {}
    for path in string_paths(spec):
        files = render(target, replaced(spec, path, "zqreach" + str(getattr_path(spec, path))))
        if files is not None and any("zqreach" in text for text in files.values()):
            found[path] = files
    return found


def getattr_path(node: Any, path: Path_) -> Any:
    for step in path:
        node = node[step] if isinstance(step, int) else getattr(node, step)
    return node


# -- an HCL reader that knows strings, interpolations and comments ------------------------------------------------


def hcl_parts(text: str, start: int = 0, *, until: str = "") -> tuple[str, str, int]:
    """(skeleton, code outside strings, end index) of HCL from ``start``; raises on a malformed string.

    The skeleton is the code with words as ``w``, whitespace collapsed and string contents dropped (the
    interpolations inside strings are kept, as skeletons): an injection that adds a block, an attribute or an
    interpolation changes it; a value that stays inside a string literal does not.
    """
    skeleton, code, i, depth = [], [], start, 0
    while i < len(text):
        char = text[i]
        if until and depth == 0 and char == until:
            return "".join(skeleton), "".join(code), i
        if char == '"':
            inner, inner_code, i = hcl_string_parts(text, i + 1)
            skeleton.append(f'"{inner}"')
            code.append(inner_code)
            continue
        if char == "#" or text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        if text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        if text.startswith("<<", i):
            raise AssertionError(f"unexpected heredoc at {i}")
        depth += {"{": 1, "}": -1}.get(char, 0) if until else 0
        skeleton.append(char)
        code.append(char)
        i += 1
    assert not until, "an interpolation is not closed"
    normal = re.sub(r"\s+", " ", re.sub(r"[A-Za-z0-9_.\-]+", "w", "".join(skeleton)))
    return normal, "".join(code), i


def hcl_string_parts(text: str, i: int) -> tuple[str, str, int]:
    """Skeleton of a quoted template's interpolations, their code, and the index after the closing quote."""
    skeleton, code = [], []
    while True:
        assert i < len(text), "a string literal is not closed"
        char = text[i]
        assert char != "\n", "a newline inside a string literal (an escape is missing)"
        if char == "\\":
            i += 2
        elif text.startswith(("$${", "%%{"), i):
            i += 3
        elif text.startswith(("${", "%{"), i):
            inner, inner_code, i = hcl_parts(text, i + 2, until="}")
            skeleton.append("${" + inner + "}")
            code.append(inner_code)
            i += 1
        elif char == '"':
            return "".join(skeleton), " ".join(code), i + 1
        else:
            i += 1


def hcl_skeleton(text: str) -> tuple[str, str]:
    skeleton, code, _end = hcl_parts(text)
    return skeleton, code


def top_level_blocks(text: str) -> int:
    """Blocks opened at depth 0 (resource, variable, output, terraform, provider)."""
    skeleton, _code = hcl_skeleton(text)
    depth, blocks = 0, 0
    for char in skeleton:
        if char == "{":
            blocks += depth == 0
            depth += 1
        elif char == "}":
            depth -= 1
    return blocks


# -- what each kind of file must look like --------------------------------------------------------------------------


def tagged_scalars(text: str) -> list[tuple[str, str]]:
    """(tag, value) of every scalar of a YAML document."""
    found: list[tuple[str, str]] = []

    def walk(node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            found.append((node.tag, node.value))
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(key)
                walk(value)

    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        walk(document)
    return found


ANSIBLE_VARS = ("ansible/vars.yml", "ansible/group_vars/all.yml")


def assert_only_data(name: str, text: str, good: str, value: str) -> None:
    """``text`` (file ``name`` rendered with ``value`` somewhere) holds it as data only; ``good``: benign render."""
    if name.endswith((".tf", ".tfvars.example")):
        skeleton, code = hcl_skeleton(text)
        assert skeleton == hcl_skeleton(good)[0], f"{name}: the HCL structure changed"
        assert MARK not in code, f"{name}: the value is outside a string literal"
        assert top_level_blocks(text) == top_level_blocks(good)
    elif name.endswith(".py") or name.endswith(".cfg"):
        assert text == good, f"{name} depends on the spec"
        compile(text, name, "exec") if name.endswith(".py") else None
    elif name.endswith((".yml", ".yaml")):
        scalars = tagged_scalars(text)
        marked = [(tag, scalar) for tag, scalar in scalars if MARK in scalar]
        if name in ANSIBLE_VARS:
            assert all(tag == "!unsafe" for tag, _ in marked), f"{name}: a spec string Ansible would template"
            assert load_ansible_yaml(text) is not None
        assert all(value in scalar for _, scalar in marked), f"{name}: the value did not load back whole"
    elif name.endswith(".json"):
        assert json.loads(text)


#: Read at collection: a target registered before the tests are collected is tested like the others.
TARGET_NAMES = target_names()


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_hostile_strings_in_every_reachable_field_stay_data(target):
    spec = benign()
    paths = reachable(target)
    assert len(paths) >= 10, "the walk found the spec's strings"
    rendered_some = 0
    for path, good in paths.items():
        for payload in PAYLOADS:
            value = MARK + payload
            files = render(target, replaced(spec, path, value))
            if files is None:
                continue
            rendered_some += 1
            assert files.keys() == good.keys(), path
            for name, text in files.items():
                if text != good[name]:
                    assert_only_data(name, text, good[name], value)
    assert rendered_some >= len(paths), "most hostile values render (escaped), they are not all refused"


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_a_multiline_header_value_cannot_leave_its_comment(target):
    spec = replaced(benign(), ("source", "service_id"), MARK + '\nresource "x" "y" {}\n')
    files, good = render(target, spec), render(target, benign())
    assert files is not None and good is not None
    for name, text in files.items():
        if name.endswith((".md", ".json")):
            continue
        assert not re.search(r'^\s*resource "x"', text, re.M), name
        assert len(text.splitlines()) == len(good[name].splitlines()), name


def test_python_helper_holds_no_spec_value_and_reads_no_template():
    spec = replaced(benign(), ("source", "service_id"), "'''; import os; os.system('id'); '''")
    files = render("selfmanaged", spec)
    assert files is not None
    helper = files["ansible/inventory_from_terraform.py"]
    assert "os.system" not in helper and spec.source.service_id not in helper
    assert helper == render("selfmanaged", benign())["ansible/inventory_from_terraform.py"]  # type: ignore[index]


# -- checks before rendering (items 2, 3, 10) -------------------------------------------------------------------------


def user(name: str, **parts: tuple[str, ...]) -> User:
    """A user the model may refuse (built without validation)."""
    return User.model_construct(name=name, **{"categories": (), "commands": (), "keys": (), "channels": ()} | parts)


def with_users(*users: User) -> ServiceSpec:
    return benign().model_copy(update={"users": users})


@pytest.mark.parametrize("target", ["aws", "ovh", "aiven"])
def test_users_whose_names_make_the_same_resource_name_are_refused(target):
    spec = with_users(user("app.ro", keys=("a:*",)), user("app-ro", keys=("b:*",)))
    with pytest.raises(InputError) as caught:
        get_target(target).render(spec, RenderOptions())
    assert "'app.ro'" in caught.value.message and "'app-ro'" in caught.value.message


def test_users_whose_aws_user_ids_are_cut_to_the_same_40_characters_are_refused():
    long = "analytics-team-reporting-readonly-"
    spec = with_users(user(long + "a", keys=("a:*",)), user(long + "b", keys=("b:*",)))
    with pytest.raises(InputError, match="same resource name"):
        get_target("aws").render(spec, RenderOptions())


@pytest.mark.parametrize("target", ["aws", "selfmanaged"])
def test_allow_list_entries_whose_rule_names_collide_are_refused(target):
    entries = (AllowedCidr(cidr="a::b:c/128"), AllowedCidr(cidr="a:b::c/128"))
    with pytest.raises(InputError, match="'a::b:c/128' and 'a:b::c/128'"):
        get_target(target).render(benign().model_copy(update={"allow_list": entries}), RenderOptions())


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_a_user_name_that_would_add_acl_rules_is_refused(target):
    spec = with_users(user("x ~* +@all", keys=("a:*",), categories=("+@read",)))
    with pytest.raises(InputError, match="user name"):
        get_target(target).render(spec, RenderOptions())


@pytest.mark.parametrize("target", ["local", "selfmanaged", "aws", "gcp"])
def test_a_key_pattern_that_would_inject_acl_rules_is_refused(target):
    spec = with_users(user("metrics", keys=("metrics:* nopass ~* +@all",), categories=("+@read",)))
    with pytest.raises(InputError, match="cannot be expressed"):
        get_target(target).render(spec, RenderOptions())


@pytest.mark.parametrize("target", ["local", "selfmanaged"])
@pytest.mark.parametrize("value", ["Ex\nenable-debug-command yes", "Ex\renable-debug-command yes", "Ex\x00"])
def test_a_config_value_that_would_add_a_valkey_conf_line_is_refused(target, value):
    item = ConfigItem(source_name="redis_notify_keyspace_events", valkey_name="notify-keyspace-events", value="Ex")
    spec = benign().model_copy(update={"configuration": (item.model_copy(update={"value": value}),)})
    with pytest.raises(InputError, match="notify-keyspace-events"):
        get_target(target).render(spec, RenderOptions())


@pytest.mark.parametrize(
    ("target", "path"), [("local", "ansible/vars.yml"), ("selfmanaged", "ansible/group_vars/all.yml")]
)
def test_a_template_in_a_config_value_reaches_ansible_as_tagged_data(target, path):
    value = "Ex{{ lookup('pipe','id > /tmp/x') }}"
    item = ConfigItem.model_construct(
        source_name="redis_notify_keyspace_events", valkey_name="notify-keyspace-events", value=value
    )
    renamed = user("{{lookup('pipe','id')}}x", keys=("a:*",), categories=("+@read",))
    spec = benign().model_copy(update={"configuration": (item,), "users": (renamed,)})
    files = render(target, spec)
    assert files is not None
    variables = load_ansible_yaml(files[path])
    assert variables["valkey_config"]["notify-keyspace-events"] == value
    assert variables["valkey_users"][0]["name"] == renamed.name
    templated = [scalar for tag, scalar in tagged_scalars(files[path]) if "{{" in scalar and tag != "!unsafe"]
    assert all("playbook_dir" in scalar for scalar in templated), "only the constant paths are templated"


def test_an_ipv6_cidr_becomes_an_ipv6_rule_on_aws():
    entries = (AllowedCidr(cidr="10.0.0.0/24"), AllowedCidr(cidr="2001:db8::/32", description="v6"))
    files = render("aws", benign().model_copy(update={"allow_list": entries}))
    assert files is not None
    rules = files["terraform/main.tf"].split('resource "aws_vpc_security_group_ingress_rule"')[1:]
    assert len(rules) == 2
    v6 = next(rule for rule in rules if "2001:db8::/32" in rule)
    assert re.search(r'cidr_ipv6\s+= "2001:db8::/32"', v6) and "cidr_ipv4" not in v6


def test_no_cidr_becomes_a_gcp_ingress_rule_that_would_not_filter_psc_traffic():
    entries = (AllowedCidr(cidr="10.0.0.0/24"), AllowedCidr(cidr="2001:db8::/32"))
    files = render("gcp", benign().model_copy(update={"allow_list": entries}))
    assert files is not None
    main = files["terraform/main.tf"]
    assert 'resource "google_compute_firewall"' not in main
    assert "10.0.0.0/24" not in main and "2001:db8::/32" not in main


@pytest.mark.parametrize("target", TARGET_NAMES)
@pytest.mark.parametrize(
    ("options", "topology"),
    [
        (RenderOptions(shards=100_000_000), None),
        (RenderOptions(), {"shards": 100_000_000}),
        (RenderOptions(replicas=10_000), None),
        (RenderOptions(shards=-3), None),
    ],
)
def test_node_counts_beyond_the_target_are_refused_before_anything_is_built(target, options, topology):
    spec = benign()
    if topology:
        spec = spec.model_copy(update={"topology": spec.topology.model_copy(update=topology)})
    started = time.monotonic()
    with pytest.raises(InputError, match="shard|replica|instance"):
        get_target(target).render(spec, options)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("target", ["local", "selfmanaged"])
def test_the_largest_local_shape_still_renders(target):
    files = render(target, benign(), RenderOptions(shards=16, replicas=2))
    assert files is not None


@pytest.mark.parametrize("target", TARGET_NAMES)
@pytest.mark.parametrize("memory", [math.nan, math.inf, -math.inf, 0.0, -7.0])
def test_memory_that_is_not_finite_and_positive_is_refused(target, memory):
    spec = benign()
    spec = spec.model_copy(update={"plan": spec.plan.model_copy(update={"memory_gb": memory})})
    with pytest.raises(InputError, match="memory"):
        get_target(target).render(spec, RenderOptions())


@pytest.mark.parametrize("target", TARGET_NAMES)
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("backups", "retention_days"), -1),
        (("backups", "time"), "2"),
        (("maintenance_time",), "x:y"),
        (("allow_list", 0, "cidr"), "0.0.0.0/0\nx"),
        (("network", "private", "subnet", "cidr"), "not a cidr"),
    ],
)
def test_values_no_target_accepts_are_refused_not_crashed_on(target, path, value):
    with pytest.raises(InputError):
        get_target(target).render(replaced(benign(), path, value), RenderOptions())


def test_the_hcl_reader_sees_an_injection():
    good = 'a "b" {\n  x = "y"\n}\n'
    bad = 'a "b" {\n  x = "y"\n}\nresource "x" "y" {}\n'
    assert hcl_skeleton(good)[0] != hcl_skeleton(bad)[0] and top_level_blocks(bad) == 2
    assert hcl_skeleton('x = "a${b}c"')[0] != hcl_skeleton('x = "a$${b}c"')[0]
    with pytest.raises(AssertionError):
        hcl_skeleton('x = "a\nb"')
