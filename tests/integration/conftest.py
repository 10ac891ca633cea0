"""Integration fixtures: real valkey-server fleets and the OVH API emulator over HTTP."""

from __future__ import annotations

import shutil

import pytest

from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.ovh_api import OvhApiServer
from reproducer.sandbox.seed import Seeded, seed_business_service

if shutil.which("valkey-server") is None:  # pragma: no cover - make test installs it
    pytest.skip("valkey-server is not installed: run 'make setup'", allow_module_level=True)


@pytest.fixture(scope="session")
def api_server(tmp_path_factory) -> OvhApiServer:
    server = OvhApiServer(tmp_path_factory.mktemp("ovh-api"), settle_seconds=0.3).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seeded(api_server) -> Seeded:
    return seed_business_service(api_server)


@pytest.fixture(autouse=True)
def _no_leftover_faults(api_server):
    yield
    api_server.clear_faults()


@pytest.fixture
def fleets():
    """Start Valkey fleets for a test (``fleets(**FleetSpec fields)``); all are stopped afterwards."""
    started: list[Fleet] = []

    def start(**kwargs) -> Fleet:
        fleet = Fleet.start(FleetSpec(**kwargs))
        started.append(fleet)
        return fleet

    yield start
    for fleet in started:
        fleet.stop()
