"""The Terraform outputs of a managed-cloud apply become the copy target only once checked: they are outside input."""

from __future__ import annotations

import json

import pytest

from reproducer.errors import ToolError
from reproducer.pipeline.cloud import passwords_needed, service_from_outputs
from reproducer.run.terraform import Output

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _outputs(**changed: object) -> dict[str, Output]:
    values = {"endpoint_host": "10.0.0.5", "endpoint_port": 6379, "tls": True, "cluster_mode": False}
    values |= changed
    return {name: Output(value) for name, value in values.items() if value is not None}


def test_good_outputs_become_the_target_and_are_saved_without_sensitive_ones(tmp_path):
    outputs = _outputs(ca_certificate=PEM, user_names=["app", "default"])
    outputs["user_passwords"] = Output({"app": "secret-value"}, sensitive=True)

    service = service_from_outputs(tmp_path, outputs)

    assert (service.host, service.port, service.tls, service.cluster) == ("10.0.0.5", 6379, True, False)
    assert service.ca == tmp_path / "target-ca.pem" and service.ca.read_text() == PEM
    assert service.users == ["app", "default"]
    saved = (tmp_path / "outputs.json").read_text()
    assert "secret-value" not in saved and json.loads(saved)["endpoint_port"] == 6379
    assert service.record()["topology"] == "standalone" and service.record()["ca"] == str(service.ca)


def test_an_ipv6_endpoint_is_bracketed_for_urls_and_an_empty_ca_means_the_given_one(tmp_path):
    service = service_from_outputs(tmp_path, _outputs(endpoint_host="fd00::5", ca_certificate=""), tmp_path / "my.pem")

    assert service.host == "[fd00::5]" and service.ca == tmp_path / "my.pem"
    assert not (tmp_path / "target-ca.pem").exists()


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"endpoint_host": "x?password_env=HOME&ca=/etc/shadow"}, "endpoint_host"),
        ({"endpoint_host": "user@evil.example"}, "endpoint_host"),
        ({"endpoint_host": "host/../path"}, "endpoint_host"),
        ({"endpoint_host": ""}, "endpoint_host"),
        ({"endpoint_host": None}, "endpoint_host"),
        ({"endpoint_port": 0}, "endpoint_port"),
        ({"endpoint_port": 70000}, "endpoint_port"),
        ({"endpoint_port": 6379.5}, "endpoint_port"),
        ({"endpoint_port": "6379"}, "endpoint_port"),
        ({"tls": "true"}, "tls"),
        ({"cluster_mode": 1}, "cluster_mode"),
        ({"ca_certificate": "not a certificate"}, "ca_certificate"),
    ],
)
def test_a_hostile_or_broken_output_is_refused_and_nothing_is_saved(tmp_path, changed, named):
    with pytest.raises(ToolError) as caught:
        service_from_outputs(tmp_path, _outputs(**changed))

    assert named in caught.value.message and caught.value.hint
    assert not (tmp_path / "outputs.json").exists() and not (tmp_path / "target-ca.pem").exists()


def test_passwords_the_cloud_made_are_kept_in_memory_only_and_checked(tmp_path):
    outputs = _outputs() | {"user_passwords": Output({"default": "made-by-ovh"}, sensitive=True)}

    service = service_from_outputs(tmp_path, outputs)

    assert service.passwords == {"default": "made-by-ovh"} and "made-by-ovh" not in repr(service)
    assert "made-by-ovh" not in (tmp_path / "outputs.json").read_text()
    with pytest.raises(ToolError, match="user_passwords"):
        service_from_outputs(tmp_path, _outputs() | {"user_passwords": Output(["x"], sensitive=True)})


@pytest.mark.parametrize(
    ("target", "needed"),
    [
        ("aws", ["analytics", "app", "default"]),  # the user gives every password
        ("aiven", ["analytics", "app"]),  # Aiven makes default's
        ("ovh", []),  # OVH makes them all
        ("scaleway", ["default"]),  # one user: the others are manual rows, rendered nowhere
    ],
)
def test_the_passwords_asked_follow_the_registry(target, needed):
    assert passwords_needed(target, ["app", "analytics"]) == needed
