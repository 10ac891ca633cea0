"""``render --network existing`` and ``--adopt`` through real Terraform with the real provider schemas.

Each render is fmt-checked, validated and planned offline (``reproducer.offline``): the plan creates no network
resource and reads the user's network with data sources, the ``import`` blocks plan as imports of exactly the
given ids, and the network variables' ``validation`` blocks refuse ids of the wrong shape before anything is
planned.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reproducer.model import ServiceSpec
from reproducer.offline import install_mirror
from reproducer.run.terraform import Terraform, TerraformError
from reproducer.targets import get_target
from reproducer.targets.adopt import imports_tf
from reproducer.targets.base import RenderOptions
from reproducer.targets.render import Safe, hcl_string
from tests.integration.test_render_terraform import OFFLINE_ZONES, expected_resources, spec_of

TARGETS = ("aws", "gcp", "ovh", "selfmanaged")
#: What a render creates for a network of its own; none of it may be planned with --network existing.
NETWORK = {
    "aws": {"aws_vpc", "aws_subnet"},
    "gcp": {"google_compute_network", "google_compute_subnetwork"},
    "ovh": {
        "ovh_vrack_cloudproject",
        "ovh_cloud_project_network_private",
        "ovh_cloud_project_network_private_subnet",
        "ovh_cloud_project_network_private_subnet_v2",
    },
    "selfmanaged": {
        "openstack_networking_network_v2",
        "openstack_networking_subnet_v2",
        "openstack_networking_router_v2",
        "openstack_networking_router_interface_v2",
    },
}
#: The data sources that read the user's network, with the example variables (two AWS subnets).
READ = {
    "aws": {"data.aws_vpc.cache_prod", "data.aws_subnet.cache_prod[0]", "data.aws_subnet.cache_prod[1]"},
    "gcp": {"data.google_compute_network.cache_prod", "data.google_compute_subnetwork.cache_prod"},
    "ovh": {"data.ovh_cloud_project_vrack.cache_prod"},
    "selfmanaged": {
        "data.openstack_networking_network_v2.cache_prod",
        "data.openstack_networking_subnet_v2.cache_prod",
    },
}
#: One resource per target adopted beside the existing network, with its provider id (import id shapes:
#: docs/reference/adoption.md#import-ids).
ADOPT = {
    "aws": ("aws_security_group.cache_prod", "sg-0123456789abcdef0"),
    "gcp": (
        "google_network_connectivity_service_connection_policy.cache_prod",
        "projects/my-gcp-project/locations/europe-west9/serviceConnectionPolicies/cache-prod",
    ),
    "ovh": (
        "ovh_cloud_project_database.cache_prod",
        "0123456789abcdef0123456789abcdef/valkey/3f0b2c6e-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
    ),
    "selfmanaged": ("openstack_networking_secgroup_v2.cache_prod", "00000000-0000-4000-8000-000000000009"),
}


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory) -> Path:
    """A mirror of the four targets' providers."""
    keys = sorted({key for name in TARGETS for key in get_target(name).terraform_providers})
    return install_mirror(tmp_path_factory.mktemp("tf-mirror"), keys)


def workdir(target: str, spec: ServiceSpec, options: RenderOptions, root: Path) -> Path:
    """The rendered Terraform files in ``root/terraform``, with the tfvars example as the variables."""
    files = get_target(target).render(spec, options).files
    for name, text in files.items():
        if name.startswith("terraform/"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
    terraform = root / "terraform"
    (terraform / "terraform.tfvars").write_text((terraform / "terraform.tfvars.example").read_text())
    return terraform


def checked_plan(tf: Terraform) -> Any:
    """fmt -check, init, validate, then the plan."""
    assert tf.fmt_check().clean
    tf.init(backend=False)
    validation = tf.validate()
    assert validation.valid, validation.diagnostics
    return tf.plan()


def imports(plan: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Address → (imported id, actions) of every resource the plan imports."""
    return {
        rc["address"]: (rc["change"]["importing"]["id"], tuple(rc["change"]["actions"]))
        for rc in plan.raw["resource_changes"]
        if rc["change"].get("importing")
    }


def data_read(plan: Any) -> set[str]:
    """The data sources the plan read."""
    resources = plan.raw.get("prior_state", {}).get("values", {}).get("root_module", {}).get("resources", [])
    return {r["address"] for r in resources if r["mode"] == "data"}


#: The spec of each target: OVH's Essential spec is public, and goes into the user's private network.
SCENARIO = {"aws": "business", "gcp": "business", "ovh": "essential", "selfmanaged": "business"}


@pytest.mark.parametrize("target", TARGETS)
def test_an_existing_network_is_read_not_created_and_an_adopted_resource_is_imported(target, cli_config, tmp_path):
    spec = spec_of(SCENARIO[target])
    kind, ident = ADOPT[target]
    address = kind.replace("cache_prod", str(get_target(target).context(spec, RenderOptions())["ident"]))
    options = RenderOptions(network="existing", adopt=((address, ident),))
    plan = checked_plan(Terraform(workdir(target, spec, options, tmp_path), cli_config=cli_config))

    assert imports(plan) == {address: (ident, ("update",))}
    changed = {rc.type for rc in plan.resource_changes}
    assert not changed & NETWORK[target], "no network resource is planned at all"
    created = Counter(rc.type for rc in plan.resource_changes if rc.actions == ("create",))
    expected = expected_resources(target, SCENARIO[target], spec)
    assert expected is not None
    expected = Counter({kind: n for kind, n in expected.items() if kind not in NETWORK[target]})
    expected[address.split(".")[0]] -= 1
    assert created == +expected
    assert plan.destroy == 0
    assert data_read(plan) == {name.replace("cache_prod", address.split(".")[1]) for name in READ[target]}
    if target == "ovh":  # a public source: its nodes go into the user's network all the same
        database = next(rc for rc in plan.raw["resource_changes"] if rc["type"] == "ovh_cloud_project_database")
        assert [(n["network_id"], n["subnet_id"]) for n in database["change"]["after"]["nodes"]] == [
            ("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002")
        ]


def test_the_network_a_render_creates_can_be_adopted_and_an_id_reaches_terraform_as_literal_text(cli_config, tmp_path):
    """The escaping of imports.tf alone (the id check is bypassed here): Terraform imports exactly these characters."""
    hostile = '${file("/etc/passwd")}"\n%{for x in [1]}x%{endfor}\\'
    adopt = [("aws_subnet.cache_prod[0]", "subnet-0123456789abcdef0"), ("aws_vpc.cache_prod", hostile)]
    terraform = workdir("aws", spec_of("business"), RenderOptions(adopt=(adopt[0],)), tmp_path)
    (terraform / "imports.tf").write_text(imports_tf(adopt, Safe("# test")))
    plan = checked_plan(Terraform(terraform, cli_config=cli_config))
    assert imports(plan) == {address: (ident, ("update",)) for address, ident in adopt}
    created = Counter(rc.type for rc in plan.resource_changes if rc.actions == ("create",))
    assert created["aws_vpc"] == 0 and created["aws_subnet"] == OFFLINE_ZONES - 1


#: Ids of the wrong shape for each target's network variables: a typo of the real shape, and injection attempts
#: (tfvars are literal: ``${`` is written as an escaped string and must be refused as text).
HOSTILE_VARIABLES: dict[str, list[dict[str, Any]]] = {
    "aws": [
        {"vpc_id": '${file("/etc/passwd")}', "subnet_ids": ["subnet-0123456789abcdef0", "sg-0123456789abcdef0"]},
        {"vpc_id": "vpc-0123456789abcdef0\nx", "subnet_ids": []},
    ],
    "gcp": [{"network_name": "projects/p/global/networks/my-vpc", "subnetwork_name": "%{for x in [1]}x%{endfor}"}],
    "ovh": [{"private_network_id": "pn-000000", "subnet_id": '"}; x = "1'}],
    "selfmanaged": [{"network_id": "${var.admin_cidrs}", "subnet_id": "00000000-0000-4000-8000-0000000000021"}],
}
CASES = [(target, values) for target, cases in HOSTILE_VARIABLES.items() for values in cases]


def tfvars(values: dict[str, Any]) -> str:
    """A tfvars file of ``values`` written as escaped HCL literals."""

    def literal(value: Any) -> str:
        return "[" + ", ".join(hcl_string(v) for v in value) + "]" if isinstance(value, list) else hcl_string(value)

    return "".join(f"{name} = {literal(value)}\n" for name, value in values.items())


@pytest.mark.parametrize(
    ("target", "values"), CASES, ids=[f"{t}-{i}" for t, cases in HOSTILE_VARIABLES.items() for i in range(len(cases))]
)
def test_network_ids_of_the_wrong_shape_are_refused_by_the_variables_validation(target, values, cli_config, tmp_path):
    terraform = workdir(target, spec_of("business"), RenderOptions(network="existing"), tmp_path)
    (terraform / "bad.tfvars").write_text(tfvars(values))
    tf = Terraform(terraform, cli_config=cli_config)
    tf.init(backend=False)
    with pytest.raises(TerraformError) as caught:
        tf.plan(var_files=[terraform / "bad.tfvars"])
    failed = {d.summary for d in caught.value.diagnostics}
    assert failed == {"Invalid value for variable"}, caught.value.diagnostics
    details = " ".join(d.detail for d in caught.value.diagnostics)
    for name in values:
        assert f"The {name} must be" in details, details
