"""The emulator's write routes reach the real Valkey servers behind each service."""

from __future__ import annotations

import time

import ovh.exceptions
import pytest
import valkey

from reproducer.sandbox.ovh_api import OvhApiServer
from reproducer.sandbox.seed import ovh_client
from tests.support.ovh import service_fleet, service_path, wait_ready


@pytest.fixture
def client(api_server, seeded):
    return ovh_client(api_server, seeded.credentials)


@pytest.fixture
def base(seeded):
    return service_path(seeded)


def connect(fleet, username, password):
    return valkey.Valkey(
        host="127.0.0.1",
        port=fleet.current_primary().port,
        username=username,
        password=password,
        ssl=True,
        ssl_ca_certs=str(fleet.tls_files.ca_cert),
        socket_timeout=5,
    )


@pytest.fixture
def new_user(client, base):
    """``new_user(**body)``: a user created on the seeded service; those still there are deleted afterwards."""
    made: list[str] = []

    def create(**body):
        created = client.post(f"{base}/user", **body)
        made.append(created["id"])
        return created

    yield create
    for user_id in set(made) & set(client.get(f"{base}/user")):
        client.delete(f"{base}/user/{user_id}")


def test_collections_are_id_lists_and_items_have_ovh_shapes(client, base, seeded):
    ids = client.get(f"/cloud/project/{seeded.project}/database/valkey")
    assert ids == [seeded.service_id]
    service = client.get(base)
    assert service["engine"] == "valkey" and service["nodeNumber"] == 2 and service["networkType"] == "private"
    assert service["endpoints"][0]["uri"].startswith("rediss://<username>:<password>@")
    node_ids = client.get(f"{base}/node")
    assert client.get(f"{base}/node/{node_ids[0]}")["id"] == node_ids[0]
    assert all(len(u) == 36 for u in client.get(f"{base}/user"))
    assert isinstance(client.get(f"/cloud/project/{seeded.project}/network/private"), list)


def test_created_user_authenticates_over_tls_with_returned_password(api_server, seeded, client, base, new_user):
    created = new_user(name="migrator", categories=["+@read", "+@connection"], keys=["*"])
    assert created["channels"] == ["*"] and "password" in created
    assert "password" not in client.get(f"{base}/user/{created['id']}")
    fleet = service_fleet(api_server, seeded)
    with connect(fleet, "migrator", created["password"]) as conn:
        assert conn.ping()
        with pytest.raises(valkey.exceptions.NoPermissionError):
            conn.set("k", "v")
    reset = client.post(f"{base}/user/{created['id']}/credentials/reset")
    assert reset["password"] != created["password"]
    with pytest.raises(valkey.exceptions.AuthenticationError), connect(fleet, "migrator", created["password"]) as c:
        c.ping()
    assert client.delete(f"{base}/user/{created['id']}") is None
    with pytest.raises(valkey.exceptions.AuthenticationError), connect(fleet, "migrator", reset["password"]) as c:
        c.ping()


def test_user_errors(client, base):
    with pytest.raises(ovh.exceptions.BadParametersError, match="Username cannot contain"):
        client.post(f"{base}/user", name="bad name")
    with pytest.raises(ovh.exceptions.ResourceConflictError):
        client.post(f"{base}/user", name="app")
    with pytest.raises(ovh.exceptions.ResourceNotFoundError, match="User .* does not exist"):
        client.get(f"{base}/user/00000000-0000-0000-0000-000000000000")


def test_notify_keyspace_events_reaches_every_server(api_server, seeded, client, base):
    answer = client.put(f"{base}/advancedConfiguration", redis_notify_keyspace_events="KEA")
    assert answer["redis_notify_keyspace_events"] == "KEA"
    fleet = service_fleet(api_server, seeded)
    for node in fleet.servers:
        assert fleet.admin(node, "CONFIG", "GET", "notify-keyspace-events")[1] in ("AKE", "KEA", "gxlshzetmdnKE")
    with pytest.raises(ovh.exceptions.BadParametersError, match="redis_timeout"):
        client.put(f"{base}/advancedConfiguration", redis_timeout="-5")


def test_put_ip_restrictions_then_conflict_then_no_update(client, base):
    wait_ready(client, base)
    original = [{"ip": r["ip"], "description": r["description"]} for r in client.get(base)["ipRestrictions"]]
    try:
        _put_ip_restrictions(client, base)
    finally:
        wait_ready(client, base)
        client.put(base, ipRestrictions=original)
        wait_ready(client, base)


def _put_ip_restrictions(client, base):
    wanted = [{"ip": "198.51.100.0/24", "description": "migration host"}]
    updated = client.put(base, ipRestrictions=wanted)
    assert [r["ip"] for r in updated["ipRestrictions"]] == ["198.51.100.0/24"]
    assert updated["status"] == "UPDATING"
    with pytest.raises(ovh.exceptions.ResourceConflictError, match="not ready"):
        client.put(base, description="again")
    wait_ready(client, base)
    with pytest.raises(ovh.exceptions.BadParametersError, match="No update"):
        client.put(base, ipRestrictions=wanted)
    with pytest.raises(ovh.exceptions.BadParametersError, match="Invalid IP block"):
        client.put(base, ipRestrictions=[{"ip": "300.1.1.1/32"}])


def test_void_answers_are_200_null_with_query_id(api_server, seeded):
    client = ovh_client(api_server, seeded.credentials)
    response = client.raw_call("GET", "/auth/time", need_auth=False)
    assert response.status_code == 200 and response.headers["X-Ovh-Queryid"].startswith("EU.ext-sandbox.")
    assert abs(response.json() - time.time()) < 5


def test_create_essential_service_starts_one_node(api_server, scratch_project, client):
    base = f"/cloud/project/{scratch_project}/database/valkey"
    with pytest.raises(ovh.exceptions.ResourceNotFoundError, match="Version 6.2"):
        client.post(
            base, plan="essential", version="6.2", nodesPattern={"flavor": "db1-4", "number": 1, "region": "GRA"}
        )
    with pytest.raises(ovh.exceptions.BadParametersError, match="TooManyNodes|node"):
        client.post(
            base, plan="essential", version="8.0", nodesPattern={"flavor": "db1-4", "number": 2, "region": "GRA"}
        )
    created = client.post(base, plan="essential", version="8.0", nodesList=[{"flavor": "db1-4", "region": "SBG"}])
    assert created["status"] == "CREATING" and created["nodeNumber"] == 1
    wait_ready(client, f"{base}/{created['id']}")
    record = api_server.store.find_service(scratch_project, created["id"])
    fleet = api_server.store.fleet(created["id"], record)
    pids = [n.pid for n in fleet.nodes]
    assert client.delete(f"{base}/{created['id']}") is None
    with pytest.raises(ovh.exceptions.ResourceNotFoundError, match="Service .* does not exist"):
        client.get(f"{base}/{created['id']}")
    from reproducer.procs import pid_alive

    assert not any(pid_alive(p) for p in pids)


def test_state_survives_a_restart(tmp_path):
    from reproducer.sandbox.seed import seed_business_service

    first = OvhApiServer(tmp_path, settle_seconds=0).start()
    seeded = seed_business_service(first, plan="essential")
    first.stop(stop_fleets=False)
    second = OvhApiServer(tmp_path, settle_seconds=0).start()
    try:
        client = ovh_client(second, seeded.credentials)
        base = f"/cloud/project/{seeded.project}/database/valkey/{seeded.service_id}"
        assert client.get(base)["description"] == "cache-prod"
        assert {client.get(f"{base}/user/{u}")["username"] for u in client.get(f"{base}/user")} >= {"app", "analytics"}
        fleet = second.store.fleet(seeded.service_id, second.store.find_service(seeded.project, seeded.service_id))
        with connect(fleet, "app", seeded.app_password) as conn:
            assert conn.ping()
    finally:
        second.stop()


def test_update_user_acl_reaches_the_servers(api_server, seeded, client, base, new_user):
    created = new_user(name="reader", categories=["+@connection"], keys=["a:*"])
    fleet = service_fleet(api_server, seeded)
    with connect(fleet, "reader", created["password"]) as conn:
        with pytest.raises(valkey.exceptions.NoPermissionError):
            conn.get("a:1")
        updated = client.put(f"{base}/user/{created['id']}", categories=["+@connection", "+@read"])
        assert updated["categories"] == ["+@connection", "+@read"] and updated["keys"] == ["a:*"]
        assert conn.get("a:1") is None


def test_backups_maintenance_capabilities_and_availability(client, base, seeded):
    [backup_id] = client.get(f"{base}/backup")
    assert client.get(f"{base}/backup/{backup_id}")["type"] == "automatic"
    [maintenance_id] = client.get(f"{base}/maintenance")
    assert client.post(f"{base}/maintenance/{maintenance_id}/apply")["status"] == "APPLIED"
    names = {p["name"] for p in client.get(f"{base}/capabilities/advancedConfiguration")}
    assert "redis_notify_keyspace_events" in names
    commands = client.get(f"{base}/capabilities/commands")
    assert "get" in commands and "config" not in commands and "eval" not in commands
    capabilities = client.get(f"/cloud/project/{seeded.project}/database/capabilities")
    assert capabilities["engines"][0]["versions"] == ["7.2", "8.0", "8.1"]
    rows = client.get(f"/cloud/project/{seeded.project}/database/availability")
    assert all(r["engine"] == "valkey" for r in rows)
    [row] = [
        r
        for r in rows
        if (r["plan"], r["version"], r["region"], r["specifications"]["flavor"]) == ("business", "8.0", "GRA", "db1-7")
    ]
    assert row["specifications"]["nodes"] == {"minimum": 2, "maximum": 2} and row["backups"]["retentionDays"] == 3
    assert client.get(f"/cloud/project/{seeded.project}/vrack")["name"] == "pn-000042"


@pytest.mark.parametrize(
    "command",
    [("SYNC",), ("PSYNC", "?", "-1"), ("REPLCONF", "listening-port", "6380"), ("CLIENT", "PAUSE", "10000")],
)
def test_no_user_gets_the_replication_stream_or_pauses_the_server(api_server, seeded, client, base, new_user, command):
    """OVH keeps SYNC/PSYNC and CLIENT PAUSE for itself: even a +@all user (the default) is refused, NOPERM."""
    created = new_user(name="everything", categories=["+@all"], commands=[], keys=["*"], channels=["*"])
    fleet = service_fleet(api_server, seeded)
    wait_ready(client, f"{base}/user/{created['id']}")
    server = connect(fleet, "everything", created["password"])
    with pytest.raises(valkey.exceptions.NoPermissionError):
        server.execute_command(*command)
    assert server.set("still-writes", "1") and server.delete("still-writes") == 1
    assert server.execute_command("CLIENT", "ID") > 0, "other CLIENT subcommands stay allowed"
