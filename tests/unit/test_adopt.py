"""``--adopt ADDRESS=ID`` and ``--network existing``, without Terraform: what is refused, what is written.

Terraform itself checks the output in ``tests/integration/test_render_network.py``.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from reproducer.errors import InputError
from reproducer.model import load_spec
from reproducer.targets import get_target
from reproducer.targets.adopt import IMPORTS_FILE, blocks, imports_tf, parse_adoptions, parse_network
from reproducer.targets.base import RenderOptions
from reproducer.targets.render import Safe
from tests.golden.regen import HERE
from tests.support import cli
from tests.support.hostile import MARK, replaced, string_paths
from tests.support.hostile import render as hostile_render

BUSINESS = load_spec(HERE / "specs" / "business.yaml")
EXISTING = ("aws", "gcp", "ovh", "selfmanaged")

#: Ids that would reach Terraform as interpolation, a template directive, a new line of HCL or a broken string.
HOSTILE_IDS = [
    '${file("/etc/passwd")}',
    "vpc-1${var.user_passwords}",
    "%{for x in [1]}x%{endfor}",
    '"}\nresource "x" "y" {}\n',
    "vpc-1\nvpc-2",
    "vpc-1\r",
    "vpc-1\\",
    'vpc-"1"',
    "vpc 1",
    "vpc-1\t",
    "vpc-\u2028",
    "vpc-\x00",
    "vpc-é",
    "{{ lookup('pipe','id') }}",
    "",
    "v" * 513,
]
BAD_ADDRESSES = [
    "module.net.aws_vpc.main",
    "data.aws_vpc.main",
    'aws_subnet.main["a"]',
    "aws_subnet.main[01]",
    "aws_subnet.main[-1]",
    "aws_vpc",
    "aws_vpc.main.id",
    "AWS_VPC.main",
    "aws_vpc.main; rm -rf /",
    "aws_vpc.main\n",
    "aws_vpc.${var.x}",
]


@pytest.mark.parametrize("ident", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_an_id_with_characters_no_provider_id_has_is_refused_without_echoing_a_line_break(ident):
    with pytest.raises(InputError) as caught:
        parse_adoptions([f"aws_vpc.main={ident}"])
    assert "has a character other than" in caught.value.message
    assert "\n" not in caught.value.message and "\r" not in caught.value.message
    assert "import documentation" in caught.value.hint


@pytest.mark.parametrize("address", BAD_ADDRESSES, ids=range(len(BAD_ADDRESSES)))
def test_an_address_that_is_not_type_dot_name_is_refused(address):
    with pytest.raises(InputError) as caught:
        parse_adoptions([f"{address}=vpc-0123456789abcdef0"])
    assert "TYPE.NAME" in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("value", ["aws_vpc.main", "=vpc-1", " =vpc-1"])
def test_a_value_without_address_and_id_is_refused(value):
    with pytest.raises(InputError, match="ADDRESS=ID"):
        parse_adoptions([value])


def test_one_address_with_two_ids_is_refused_and_a_repeat_is_one_import():
    with pytest.raises(InputError, match="two ids"):
        parse_adoptions(["aws_vpc.main=vpc-1", "aws_vpc.main=vpc-2"])
    assert parse_adoptions(["aws_vpc.main=vpc-1", "aws_vpc.main=vpc-1"]) == (("aws_vpc.main", "vpc-1"),)


def test_provider_id_shapes_are_taken_as_given():
    ids = [
        "vpc-0123456789abcdef0@eu-west-1",
        "projects/p-1/global/networks/my-vpc",
        "arn:aws:elasticache:eu-west-3:123456789012:replicationgroup:cache-prod",
        "0123456789abcdef0123456789abcdef/valkey/3f0b2c6e-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
        "my-project/vpc+id=1,2~x",
    ]
    pairs = parse_adoptions([f"aws_vpc.v{i}={ident}" for i, ident in enumerate(ids)])
    assert [ident for _, ident in pairs] == ids


@pytest.mark.parametrize("value", ["new", "existing"])
def test_network_takes_new_or_existing_only(value):
    assert parse_network(value) == value
    with pytest.raises(InputError, match="neither new nor existing"):
        parse_network("existing\n")


def test_imports_escape_every_id_by_construction_even_one_no_check_refused():
    hostile = '${file("/etc/passwd")}"\n%{for x in [1]}x%{endfor}\\'
    text = imports_tf([("aws_vpc.main", hostile)], Safe("# header"))
    line = next(line for line in text.splitlines() if line.strip().startswith("id"))
    assert line == '  id = "$${file(\\"/etc/passwd\\")}\\"\\n%%{for x in [1]}x%%{endfor}\\\\"'
    assert text.count("import {") == 1 and text.endswith("}\n")


def test_imports_are_sorted_whatever_the_order_given():
    first = ["aws_security_group.cache_prod=sg-0123456789abcdef0", "aws_elasticache_subnet_group.cache_prod=cache-prod"]
    files = [render("aws", adopt=first), render("aws", adopt=list(reversed(first)))]
    assert files[0] == files[1]
    imports = files[0][IMPORTS_FILE]
    assert re.findall(r"to = (\S+)", imports) == [
        "aws_elasticache_subnet_group.cache_prod",
        "aws_security_group.cache_prod",
    ]


def render(target: str, network: str = "new", adopt: list[str] | None = None) -> dict[str, str]:
    options = RenderOptions(network=parse_network(network), adopt=parse_adoptions(adopt or []))
    return get_target(target).render(BUSINESS, options).files


def test_an_address_the_render_does_not_produce_is_refused_with_the_valid_ones_listed():
    with pytest.raises(InputError) as caught:
        render("aws", adopt=["aws_instance.cache_prod=i-0123456789abcdef0"])
    message = caught.value.message
    assert "aws_instance.cache_prod: not a resource this render" in message
    assert "aws_security_group.cache_prod;" in message and "aws_elasticache_replication_group.cache_prod" in message
    assert "aws_subnet.cache_prod[N] (count = length(local.zones))" in message


@pytest.mark.parametrize(
    ("target", "address"),
    [
        ("aws", "aws_vpc.cache_prod"),
        ("aws", "aws_subnet.cache_prod[0]"),
        ("gcp", "google_compute_network.cache_prod"),
        ("ovh", "ovh_cloud_project_network_private.cache_prod"),
        ("selfmanaged", "openstack_networking_router_v2.cache_prod"),
    ],
)
def test_with_an_existing_network_its_resources_cannot_be_adopted(target, address):
    assert render(target, adopt=[f"{address}=x-1"])[IMPORTS_FILE]  # adoptable when the render creates it
    with pytest.raises(InputError, match="not a resource this render"):
        render(target, "existing", adopt=[f"{address}=x-1"])


def test_an_index_beyond_a_literal_count_is_refused():
    assert render("selfmanaged", adopt=["openstack_networking_port_v2.cache_prod[2]=p-1"])
    with pytest.raises(InputError, match=r"openstack_networking_port_v2\.cache_prod\[0\.\.2\];"):
        render("selfmanaged", adopt=["openstack_networking_port_v2.cache_prod[3]=p-1"])


@pytest.mark.parametrize("target", EXISTING)
def test_an_existing_network_creates_no_network_and_reads_the_users(target):
    files = render(target, "existing")
    terraform = "".join(text for name, text in files.items() if name.startswith("terraform/"))
    created = set(re.findall(r'^resource "([a-z0-9_]+)"', terraform, re.MULTILINE))
    network = {"aws_vpc", "aws_subnet", "google_compute_network", "google_compute_subnetwork"}
    network |= {"ovh_cloud_project_network_private", "ovh_cloud_project_network_private_subnet_v2"}
    network |= {"ovh_vrack_cloudproject", "openstack_networking_network_v2", "openstack_networking_subnet_v2"}
    network |= {"openstack_networking_router_v2", "openstack_networking_router_interface_v2"}
    assert created and not created & network
    assert re.search(r'^data "', terraform, re.MULTILINE)
    assert "validation {" in files["terraform/variables.tf"]
    report = json.loads(files["compatibility.json"])
    assert report["resources"]["network"] == "existing" and report["resources"]["read"]
    rows = {row["attribute"]: row for row in report["rows"]}
    assert "your existing network (--network existing)" in rows["network.private"]["note"]
    assert "The network comes from you" in files["COMPATIBILITY.md"]


def test_the_report_lists_what_is_adopted_and_what_is_new():
    files = render("aws", adopt=["aws_vpc.cache_prod=vpc-0123456789abcdef0"])
    resources = json.loads(files["compatibility.json"])["resources"]
    assert resources["adopted"] == {"aws_vpc.cache_prod": "vpc-0123456789abcdef0"}
    assert "aws_vpc.cache_prod" not in resources["new"] and "aws_security_group.cache_prod" in resources["new"]
    assert resources["network"] == "new" and resources["read"] == ["data.aws_availability_zones.available"]
    markdown = files["COMPATIBILITY.md"]
    assert "| `aws_vpc.cache_prod` | adopted (import block in imports.tf) | `vpc-0123456789abcdef0` |" in markdown
    assert "| `aws_security_group.cache_prod` | new | — |" in markdown


def test_the_default_render_has_no_imports_and_no_resource_section():
    files = render("aws")
    assert IMPORTS_FILE not in files and "resources" not in json.loads(files["compatibility.json"])
    assert "## Resources" not in files["COMPATIBILITY.md"]
    assert files == get_target("aws").render(BUSINESS, RenderOptions()).files


def test_aiven_refuses_an_existing_network_and_points_at_adopting_its_project_vpc():
    with pytest.raises(InputError) as caught:
        render("aiven", "existing")
    assert "Aiven for Valkey has no network of yours" in caught.value.message
    assert "--adopt aiven_project_vpc.NAME=PROJECT/VPC_ID" in caught.value.hint
    assert render("aiven", adopt=["aiven_project_vpc.cache_prod=my-project/vpc-1"])[IMPORTS_FILE]


@pytest.mark.parametrize(("network", "adopt"), [("existing", []), ("new", ["aws_vpc.cache_prod=vpc-1"])])
def test_the_local_target_refuses_both_options(network, adopt):
    with pytest.raises(InputError, match="no network of yours|renders no Terraform"):
        render("local", network, adopt)


def test_a_re_render_keeps_the_network_and_adoptions_out_was_rendered_with_until_told_otherwise(tmp_path):
    out = tmp_path / "out"
    adopt = "google_network_connectivity_service_connection_policy.cache_prod=projects/p/locations/l/x/cache-prod"
    spec = HERE / "specs" / "business.yaml"
    done = cli.run("render", "--target", "gcp", "--spec", spec, "--out", out, "--network", "existing", "--adopt", adopt)
    assert done.returncode == 0, done.stderr
    assert f"adopted: {adopt.replace('=', ' = ')} (import block in terraform/imports.tf)" in done.stderr
    first = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert 'id = "projects/p/locations/l/x/cache-prod"' in (out / IMPORTS_FILE).read_text()
    assert 'data "google_compute_network"' in (out / "terraform" / "main.tf").read_text()
    again = cli.run("render", "--target", "gcp", "--spec", spec, "--out", out)  # what plan and apply render too
    assert again.returncode == 0, again.stderr
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == first
    dropped = cli.run("render", "--target", "gcp", "--spec", spec, "--out", out, "--adopt", "none")
    assert dropped.returncode == 0, dropped.stderr
    assert not (out / IMPORTS_FILE).exists()
    assert 'data "google_compute_network"' in (out / "terraform" / "main.tf").read_text()
    new = cli.run("render", "--target", "gcp", "--spec", spec, "--out", out, "--network", "new")
    assert new.returncode == 0, new.stderr
    assert 'resource "google_compute_network"' in (out / "terraform" / "main.tf").read_text()


@pytest.mark.parametrize(
    "report",
    [
        '{"resources": {"network": "existing", "adopted": {"google_compute_network.x": ["not", "a", "string"]}}}',
        '{"resources": {"network": "somewhere"}}',
        '{"resources": ["network"]}',
        "not json",
    ],
)
def test_a_tampered_compatibility_report_is_refused_not_trusted(tmp_path, report):
    out = tmp_path / "out"
    spec = HERE / "specs" / "business.yaml"
    assert cli.run("render", "--target", "gcp", "--spec", spec, "--out", out).returncode == 0
    (out / "compatibility.json").write_text(report)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    done = cli.run("render", "--target", "gcp", "--spec", spec, "--out", out)
    assert done.returncode == 2, done.stderr
    assert "error:" in done.stderr and "hint:" in done.stderr and "Traceback" not in done.stderr
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before


HOSTILE = MARK + '"}\nresource "x" "y" {}\n${file("/etc/passwd")}%{ for x in [1] }x%{ endfor }'


@pytest.mark.parametrize("target", EXISTING)
def test_hostile_spec_values_add_no_block_to_an_existing_network_render(target):
    options = RenderOptions(network="existing")
    spec = BUSINESS
    for path in string_paths(BUSINESS):
        candidate = replaced(spec, path, HOSTILE)
        if hostile_render(target, candidate, options) is not None:
            spec = candidate
    files = get_target(target).render(spec, options).files
    assert MARK in "".join(text for name, text in files.items() if name.startswith("terraform/"))
    kinds = Counter((block.kind, block.type, block.count) for block in blocks(files))
    benign = Counter((block.kind, block.type, block.count) for block in blocks(render(target, "existing")))
    assert kinds == benign
