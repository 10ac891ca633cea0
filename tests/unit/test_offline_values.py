"""The offline provider's plan and apply answers, called as Terraform calls them (no process, no network)."""

from __future__ import annotations

from tf.gen import tfplugin_pb2 as pb

from reproducer.offline import proto
from reproducer.offline.schema import load
from reproducer.offline.server import SchemaProvider
from reproducer.offline.subset import SCHEMAS_DIR
from reproducer.offline.values import UNKNOWN, key_maps


def provider(key: str) -> SchemaProvider:
    return SchemaProvider(load(SCHEMAS_DIR / f"{key}.json"))


def plan_update(key: str, type_name: str, prior: dict, proposed: dict):
    request = pb.PlanResourceChange.Request(
        type_name=type_name, prior_state=proto.encode(prior), proposed_new_state=proto.encode(proposed)
    )
    return provider(key).PlanResourceChange(request, None)


def steps(path) -> list:
    return [step.attribute_name or step.element_key_int for step in path.steps]


def test_an_update_names_the_attributes_forcing_replacement():
    prior = {"cidr_block": "10.0.1.0/24", "vpc_id": "vpc-1", "tags": None}
    response = plan_update("aws", "aws_subnet", prior, {**prior, "cidr_block": "10.0.2.0/24", "tags": {"a": "b"}})
    assert [steps(p) for p in response.requires_replace] == [["cidr_block"]]
    assert proto.decode(response.planned_state)["cidr_block"] == "10.0.2.0/24"
    in_place = plan_update("aws", "aws_subnet", prior, {**prior, "tags": {"a": "b"}})
    assert list(in_place.requires_replace) == []


def test_a_create_or_a_destroy_never_asks_for_replacement():
    service = provider("aws")
    create = pb.PlanResourceChange.Request(
        type_name="aws_subnet", prior_state=proto.encode(None), proposed_new_state=proto.encode({"cidr_block": "x"})
    )
    destroy = pb.PlanResourceChange.Request(
        type_name="aws_subnet", prior_state=proto.encode({"cidr_block": "x"}), proposed_new_state=proto.encode(None)
    )
    assert list(service.PlanResourceChange(create, None).requires_replace) == []
    assert list(service.PlanResourceChange(destroy, None).requires_replace) == []


def test_a_keyed_computed_map_gets_one_value_per_key_after_apply():
    network = "ovh_cloud_project_network_private"
    planned = {"name": "n", "regions": ["GRA9", "SBG5"], "regions_openstack_ids": UNKNOWN, "id": UNKNOWN}
    assert key_maps(network, planned)["regions_openstack_ids"] == {"GRA9": UNKNOWN, "SBG5": UNKNOWN}
    assert key_maps("ovh_vrack_cloudproject", planned) == planned
    known = {**planned, "regions_openstack_ids": {"GRA9": "os-1"}}
    assert key_maps(network, known) == known, "a known map is the user's or the cloud's: kept"
    request = pb.ApplyResourceChange.Request(type_name=network, planned_state=proto.encode(planned))
    state = proto.decode(provider("ovh").ApplyResourceChange(request, None).new_state)
    ids = state["regions_openstack_ids"]
    assert sorted(ids) == ["GRA9", "SBG5"] and all(v.startswith("fake-") for v in ids.values())
