"""Integration fixtures: real valkey-server fleets and the OVH API emulator over HTTP.

The emulator and its seeded Business service are per session (per worker under pytest-xdist); a test that
needs a service of its own makes it in ``scratch_project``, which is emptied afterwards, so the seeded project
always lists exactly the seeded service.
"""

from __future__ import annotations

import shutil

import pytest

from reproducer.pipeline import apply as pipeline_apply
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.ovh_api import OvhApiServer
from reproducer.sandbox.seed import Seeded, load_dataset, seed_business_service
from tests.support.ovh import remove_grants, service_fleet

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
def scratch_project(api_server) -> str:
    """An empty project of the emulator for this test; every service left in it is deleted afterwards."""
    project = api_server.store.add_project("scratch")
    yield project
    record = api_server.store.project(project)
    for service_id in list(record["services"] if record else ()):
        api_server.store.delete_service(project, service_id)


@pytest.fixture
def load_source(api_server, seeded):
    """``load_source(keys, seed)``: empty the seeded service and load it with a known dataset.

    Afterwards, any temporary grant a migration left on the service is taken back.
    """

    def load(keys: int, seed: int) -> None:
        fleet = service_fleet(api_server, seeded)
        client = fleet.client(fleet.current_primary())
        client.flushall()
        load_dataset(client, keys, seed=seed)

    yield load
    api_server.clear_faults()
    remove_grants(api_server, seeded)


@pytest.fixture
def run_dir(tmp_path):
    """A job's run directory; the local target it stood up is removed afterwards."""
    path = tmp_path / "run"
    yield path
    if (path / "rendered").exists():
        pipeline_apply.destroy_local(path / "rendered")


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
