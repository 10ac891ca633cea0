import json
from pathlib import Path

import pytest

from reproducer.sources.ovh import _private_network, build_spec

RECORDED = json.loads((Path(__file__).parents[1] / "fixtures" / "ovh" / "business_service.json").read_text())


@pytest.fixture
def recorded_spec():
    """The spec built from the recorded Business service JSON, with its vRack network."""
    service = RECORDED["service"]
    network = _private_network(RECORDED["networks"][0], service["networkId"], RECORDED["subnets"][0], "pn-123456")
    return build_spec(
        project="0123456789abcdef0123456789abcdef",
        service=service,
        nodes=service["nodes"],
        users=RECORDED["users"],
        advanced=RECORDED["advancedConfiguration"],
        network=network,
        flavor_memory={},
    )
