"""`inspect --from URL` and `archive` against real servers, OVH-like ones included (CONFIG and ACL renamed away).

Every command is the user's, in a child process; the servers are the sandbox's fleets.
"""

from __future__ import annotations

import json
import secrets
import signal

import pytest

from reproducer.sandbox.fleet import ADMIN_USER, AclUser
from tests.support import cli
from tests.support.ovh import ovh_env, service_fleet
from tests.support.wait import eventually

PASSWORD_ENV = "LIVE_TEST_PASSWORD"


def _env(password: str) -> dict[str, str]:
    return {PASSWORD_ENV: password}


def _inspect(url: str, password: str, *extra: str) -> dict:
    result = cli.run("inspect", "--from", url, "--json", *extra, env=_env(password))
    assert result.returncode == 0, result.stderr[-2000:]
    assert password not in result.stdout + result.stderr
    return json.loads(result.stdout)


def test_an_ovh_like_tls_sentinel_service_gives_its_shape_and_names_what_it_refused(fleets):
    password = secrets.token_urlsafe(12)
    fleet = fleets(topology="sentinel", replicas=1, ovh_like=True, default_user_password=password, tls=True)
    sentinel, ca = fleet.sentinels[0].port, fleet.tls_files.ca_cert
    url = f"valkeys+sentinel://127.0.0.1:{sentinel}/mymaster?password_env={PASSWORD_ENV}&ca={ca}"

    spec = _inspect(url, password, "--region", "GRA", "--allow-cidr", "10.0.0.0/24")

    assert spec["schema_version"] == 2 and spec["source"]["provider"] == "live"
    assert spec["engine"]["name"] == "valkey" and spec["topology"]["mode"] == "sentinel" and spec["tls"]
    assert spec["topology"]["replicas_per_shard"] == 1 and spec["observed"]["sentinel_quorum"] == 1
    assert spec["observed"]["used_memory_bytes"] > 0
    assert spec["given"] == ["allow_list", "source.region"] and spec["allow_list"][0]["cidr"] == "10.0.0.0/24"
    unknown = {u["field"]: u["reason"] for u in spec["unknown"]}
    assert "CONFIG GET" in unknown["configuration"] and "disabled or renamed" in unknown["configuration"]
    assert "ACL LIST" in unknown["users"] and spec["users"] == [] and spec["configuration"] == []
    assert "plan.memory_gb" in unknown  # maxmemory 0: nothing guessed


def test_a_user_without_acl_rights_gets_a_partial_spec(fleets):
    password = secrets.token_urlsafe(12)
    reader = AclUser("reader", password, "~* +@read +info +hello +config|get")
    app = AclUser("app", secrets.token_urlsafe(12), "~app:* &chan:* +@all -@dangerous +get")
    fleet = fleets(users=(reader, app), maxmemory="64mb")
    port = fleet.servers[0].port

    spec = _inspect(f"valkey://reader@127.0.0.1:{port}?password_env={PASSWORD_ENV}", password)

    unknown = {u["field"]: u["reason"] for u in spec["unknown"]}
    assert "NOPERM" in unknown["users"] and spec["users"] == []
    assert {c["source_name"] for c in spec["configuration"]} >= {"redis_timeout", "redis_persistence"}
    assert spec["plan"]["memory_gb"] == 0.062 and spec["topology"]["mode"] == "standalone"

    admin = _inspect(f"valkey://127.0.0.1:{port}", "unused")  # the default user: every command
    users = {u["name"]: u for u in admin["users"]}
    assert users["app"]["keys"] == ["app:*"] and users["app"]["channels"] == ["chan:*"]
    assert users["app"]["categories"] == ["+@all", "-@dangerous"] and users["app"]["commands"] == ["+get"]
    assert "users" not in {u["field"] for u in admin["unknown"]}
    assert "#" not in json.dumps(admin["users"])  # no password hash


def _load(client) -> int:
    client.mset({f"s:{i}": f"v{i}" for i in range(40)})
    client.hset("h:1", mapping={"a": "1", "b": "2"})
    client.rpush("l:1", "x", "y", "z")
    client.zadd("z:1", {"m": 1.5})
    client.set("ttl:1", "t", ex=3600)
    client.execute_command("SELECT", 3)
    client.sadd("set:3", "p", "q")
    client.execute_command("SELECT", 0)
    return 45


def test_archive_then_import_into_an_empty_server_is_identical_and_a_flipped_byte_is_caught(fleets, tmp_path):
    password = secrets.token_urlsafe(12)
    source = fleets(ovh_like=True, default_user_password=password)
    target = fleets()
    with source.client(source.servers[0]) as client:
        keys = _load(client)
    source_url = f"valkey://127.0.0.1:{source.servers[0].port}?password_env={PASSWORD_ENV}"
    target_url = f"valkey://127.0.0.1:{target.servers[0].port}"
    bundle = tmp_path / "bundle"

    made = cli.run("archive", "--from", source_url, "-o", bundle, "--region", "GRA", env=_env(password))

    assert made.returncode == 0, made.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # the staging directory is gone
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    assert manifest["data"]["keys"] == keys and manifest["verification"]["ok"]
    assert manifest["data"]["databases"]["3"] == {"keys": 1, "types": {"set": 1}}
    assert manifest["data"]["databases"]["0"]["types"] == {"hash": 1, "list": 1, "string": 41, "zset": 1}
    assert set(manifest["files"]) == {"spec.yaml", "data/dump.rdb", "data/keys.jsonl"}
    assert password not in (bundle / "MANIFEST.json").read_text() + made.stderr
    checked = cli.run("archive", "verify", bundle, "--against", source_url, env=_env(password))
    assert checked.returncode == 0, checked.stderr[-2000:]

    restored = cli.run("import", bundle, target_url)
    assert restored.returncode == 0, restored.stderr[-2000:]
    same = cli.run("verify", source_url, target_url, env=_env(password))
    assert same.returncode == 0 and "identical" in same.stderr, same.stderr[-2000:]

    again = cli.run("archive", "--from", source_url, "-o", bundle, env=_env(password))
    assert again.returncode == 2 and "earlier bundle" in again.stderr

    rdb = bundle / "data" / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0x01
    rdb.write_bytes(bytes(data))
    flipped = cli.run("archive", "verify", bundle)
    assert flipped.returncode == 3 and "data/dump.rdb" in flipped.stderr, flipped.stderr
    refused = cli.run("import", bundle, target_url, "--replace")
    assert refused.returncode == 2 and "damaged" in refused.stderr


def test_archive_never_writes_over_a_directory_it_did_not_make_and_leaves_nothing_when_it_fails(fleets, tmp_path):
    fleet = fleets()
    url = f"valkey://127.0.0.1:{fleet.servers[0].port}"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")

    refused = cli.run("archive", "--from", url, "-o", mine)
    assert refused.returncode == 2 and "did not write" in refused.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    # maxmemory 0 and no --memory-gb: the render for aws fails (before the exports), and nothing is left
    failed = cli.run("archive", "--from", url, "-o", tmp_path / "bundle", "--target", "aws")
    assert failed.returncode == 2 and "memory" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_archive_of_an_ovh_service_takes_its_spec_from_the_api_and_its_data_from_the_url(
    api_server, seeded, load_source, tmp_path
):
    load_source(120, seed=7)
    fleet = service_fleet(api_server, seeded)
    primary = fleet.current_primary()
    query = f"password_env={PASSWORD_ENV}&ca={fleet.tls_files.ca_cert}"
    url = f"valkeys://{ADMIN_USER}@{primary.host}:{primary.port}?{query}"
    env = ovh_env(seeded, **_env(fleet._state.admin_password))
    bundle = tmp_path / "bundle"
    service = ("--project", seeded.project, "--service", seeded.service_id, "--endpoint", api_server.url)

    made = cli.run("archive", *service, "--from", url, "-o", bundle, "--target", "ovh", env=env)

    assert made.returncode == 0, made.stderr[-2000:]
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    assert manifest["source"]["spec"]["provider"] == "ovh" and manifest["target"] == "ovh"
    assert manifest["source"]["spec"]["service_id"] == seeded.service_id
    assert "render/terraform/main.tf" in manifest["files"] and manifest["data"]["keys"] > 0
    assert "provider: ovh" in (bundle / "spec.yaml").read_text()
    assert fleet._state.admin_password not in json.dumps(manifest) + made.stderr


def test_redis_is_read_as_redis(fleets):
    fleet = fleets(engine="redis", users=(AclUser("app", secrets.token_urlsafe(12), "~app:* +@read"),))

    spec = _inspect(f"redis://127.0.0.1:{fleet.servers[0].port}", "unused")

    assert spec["engine"] == {"name": "redis", "version": "7.0"}
    assert {u["name"]: u["categories"] for u in spec["users"]}["app"] == ["+@read"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_an_archive_stopped_midway_leaves_nothing_that_looks_complete(fleets, tmp_path, signum):
    fleet = fleets()
    with fleet.client(fleet.servers[0]) as client:
        for start in range(0, 20_000, 2_000):
            client.mset({f"k:{i}": "v" * 64 for i in range(start, start + 2_000)})
    bundle = tmp_path / "bundle"
    running = cli.start("archive", "--from", f"valkey://127.0.0.1:{fleet.servers[0].port}", "-o", bundle)
    try:
        # during the JSONL export: a SIGINT that lands while a child process is forked (the RDB export's scratch
        # server) is lost in Python's at-fork handlers, a defect of the CLI's signal handling reported apart
        exporting = ".bundle.archive-tmp-*/data/.keys.jsonl.*.tmp"
        eventually(lambda: list(tmp_path.glob(exporting)), "the JSONL export to start", proc=running)
        running.send_signal(signum)
        running.wait(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == (130 if signum == signal.SIGINT else -signal.SIGKILL)
    assert not bundle.exists()
    left = list(tmp_path.iterdir())
    if signum == signal.SIGINT:
        assert left == []  # the staging directory was removed
    else:  # only the hidden staging directory, with no manifest: never taken for a bundle
        assert [p.name.startswith(".bundle.archive-tmp-") for p in left] == [True]
        assert not (left[0] / "MANIFEST.json").exists()
        refused = cli.run("archive", "verify", left[0])
        assert refused.returncode == 2 and "not a complete bundle" in refused.stderr
