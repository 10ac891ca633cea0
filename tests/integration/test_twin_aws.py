"""The AWS twin, and the twin machinery it stands on, against real valkey-server and real Terraform.

Machinery: fleets shaped like resources in a twin world (TLS from the world CA, users, parameters, on the
resource's own port), outliving the process that started them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import valkey

from reproducer.sandbox.fleet import AclUser
from reproducer.twins import install_twins, running_processes, stop_all
from reproducer.twins import valkey as twin_valkey
from reproducer.twins.base import TwinError, TwinWorld
from reproducer.twins.mirror import world_of

TYPE = "test_cache"
PASSWORD = "twin-user-password-1234"


@pytest.fixture
def world(tmp_path):
    world = TwinWorld(tmp_path / "world")
    yield world
    twin_valkey.stop_all(world)


def test_a_replicated_resource_with_tls_users_and_parameters_on_its_port(world):
    shape = twin_valkey.ValkeyShape(
        replicas=1,
        tls=True,
        port=6379,
        users=(AclUser("default", PASSWORD, "on ~* &* +@all"), AclUser("app", PASSWORD, "on ~app:* +@all")),
        parameters=(("maxmemory-policy", "allkeys-lru"), ("cluster-enabled", "no")),
    )
    nodes = twin_valkey.start(world, TYPE, "one", shape)
    assert [(n.role, n.port) for n in nodes] == [("primary", 6379), ("replica", 6379)]
    assert len({n.host for n in nodes}) == 2 and all(n.host.startswith("127.") for n in nodes)
    tls = {"ssl": True, "ssl_ca_certs": str(world.root / "ca.pem"), "ssl_cert_reqs": "required"}
    with valkey.Valkey(host=nodes[0].host, port=6379, username="app", password=PASSWORD, **tls) as app:
        assert app.set("app:1", "x")
        with pytest.raises(valkey.exceptions.NoPermissionError):
            app.set("other", "x")
        assert app.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    with pytest.raises(valkey.exceptions.AuthenticationError):
        valkey.Valkey(host=nodes[0].host, port=6379, **tls).ping()
    with pytest.raises(TwinError, match="already has a running Valkey"):
        twin_valkey.start(world, TYPE, "one", shape)
    twin_valkey.stop(world, TYPE, "one")
    assert twin_valkey.nodes(world, TYPE, "one") is None
    assert twin_valkey.running_pids(world) == []


def test_a_refused_parameter_is_the_clouds_error_and_leaves_nothing_running(world):
    shape = twin_valkey.ValkeyShape(parameters=(("maxmemory-policy", "sometimes"),))
    with pytest.raises(TwinError, match="InvalidParameterValue: maxmemory-policy"):
        twin_valkey.start(world, TYPE, "bad", shape)
    assert twin_valkey.running_pids(world) == []


def test_a_fleet_outlives_the_process_that_started_it_and_stop_all_ends_it(tmp_path):
    root = tmp_path / "twins"
    install_twins(root, ["aws"])
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from reproducer.twins import valkey
        from reproducer.twins.mirror import world_of
        valkey.start(world_of(Path({str(root)!r})), {TYPE!r}, "detached", valkey.ValkeyShape())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    try:
        nodes = twin_valkey.nodes(world_of(root), TYPE, "detached")
        assert nodes is not None and len(nodes) == 1
        assert valkey.Valkey(host=nodes[0].host, port=nodes[0].port).ping()
        assert len(running_processes(root)) == 1
    finally:
        stop_all(root)
    assert running_processes(root) == []
