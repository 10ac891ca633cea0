"""The GCP outputs evaluate to the copy target in both modes, on the attribute shapes the provider fills in.

Real Terraform evaluates the rendered ``outputs.tf`` with the instance replaced by a variable holding what the
provider reads back (docs/reference/targets.md#gcp-prerequisites): connections by type under ``endpoints``, the
deprecated discovery list empty, the CA chain under ``managed_server_ca``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reproducer.run.terraform import Terraform
from tests.golden.regen import golden_dir

CHAIN = ["-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\nROOT\n"]


def connection(kind: str, address: str, port: int) -> dict[str, Any]:
    """One ``psc_auto_connection`` entry."""
    return {"connection_type": f"CONNECTION_TYPE_{kind}", "ip_address": address, "port": port, "network": "n"}


def instance(*connections: dict[str, Any]) -> dict[str, Any]:
    """A google_memorystore_instance as read after an apply with desired_auto_created_endpoints."""
    return {
        "discovery_endpoints": [],
        "endpoints": [{"connections": [{"psc_auto_connection": [c]} for c in connections]}],
        "managed_server_ca": [{"ca_certs": [{"certificates": CHAIN}]}],
    }


def evaluate(scenario: str, state: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The outputs of the golden ``outputs.tf`` of ``scenario`` with the instance given as ``state``."""
    text = (golden_dir("gcp", scenario) / "terraform" / "outputs.tf").read_text()
    (tmp_path / "outputs.tf").write_text(text.replace("google_memorystore_instance.cache_prod", "var.instance"))
    (tmp_path / "variables.tf").write_text('variable "instance" {\n  type = any\n}\n')
    (tmp_path / "terraform.tfvars.json").write_text(json.dumps({"instance": state}))
    terraform = Terraform(tmp_path)
    terraform.init(backend=False)
    terraform.apply()
    return {name: output.value for name, output in terraform.output().items()}


@pytest.mark.parametrize(
    ("scenario", "host", "cluster"),
    [("business", "10.0.0.5", False), ("business-3x1", "10.0.0.7", True)],
)
def test_gcp_outputs_pick_the_connection_of_the_mode(scenario, host, cluster, tmp_path):
    state = instance(
        connection("READER", "10.0.0.6", 6379),
        connection("PRIMARY", "10.0.0.5", 6379),
        connection("DISCOVERY", "10.0.0.7", 6379),
    )
    outputs = evaluate(scenario, state, tmp_path)
    assert (outputs["endpoint_host"], outputs["endpoint_port"], outputs["cluster_mode"]) == (host, 6379, cluster)
    assert outputs["ca_certificate"] == "\n".join(CHAIN)
    assert outputs["tls"] is True and "default" in outputs["user_names"]
