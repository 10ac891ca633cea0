"""The OVH API emulator's services as tests use them: readiness, the fleet behind one, what a migration left."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reproducer.pipeline import migrate as pipeline_migrate
from reproducer.sandbox.fleet import Fleet
from reproducer.sandbox.ovh_api import OvhApiServer
from reproducer.sandbox.seed import Seeded, ovh_client
from tests.support.wait import eventually


def wait_ready(client: Any, path: str, timeout: float = 10.0) -> None:
    """Wait until the service at API ``path`` is READY (a write leaves it UPDATING for a moment)."""
    eventually(lambda: client.get(path)["status"] == "READY", f"{path} READY", timeout=timeout)


def service_fleet(api_server: OvhApiServer, seeded: Seeded) -> Fleet:
    """The Valkey fleet behind the seeded service."""
    record = api_server.store.find_service(seeded.project, seeded.service_id)
    return api_server.store.fleet(seeded.service_id, record)


def service_path(seeded: Seeded) -> str:
    """The API path of the seeded service."""
    return f"/cloud/project/{seeded.project}/database/valkey/{seeded.service_id}"


def leftovers(api_server: OvhApiServer, seeded: Seeded) -> tuple[list[str], list[str]]:
    """The migration's temporary grants still on the service: (its user, the 127.0.0.1/32 allow-list entry)."""
    client = ovh_client(api_server, seeded.credentials)
    base = service_path(seeded)
    users = [client.get(f"{base}/user/{u}")["username"] for u in client.get(f"{base}/user")]
    cidrs = [r["ip"] for r in client.get(base)["ipRestrictions"]]
    return [u for u in users if u == pipeline_migrate.MIGRATION_USER], [c for c in cidrs if c == "127.0.0.1/32"]


def ovh_env(seeded: Seeded, **extra: str) -> dict[str, str]:
    """This process's environment plus the OVH credentials of ``seeded`` (and ``extra``), for a CLI child."""
    return {
        **os.environ,
        "OVH_APPLICATION_KEY": seeded.credentials["application_key"],
        "OVH_APPLICATION_SECRET": seeded.credentials["application_secret"],
        "OVH_CONSUMER_KEY": seeded.credentials["consumer_key"],
        **extra,
    }


def remove_grants(api_server: OvhApiServer, seeded: Seeded) -> None:
    """Take back a migration's temporary grants left on the seeded service (by a test that failed midway)."""
    client = ovh_client(api_server, seeded.credentials)
    base = service_path(seeded)
    for user_id in client.get(f"{base}/user"):
        if client.get(f"{base}/user/{user_id}")["username"] == pipeline_migrate.MIGRATION_USER:
            client.delete(f"{base}/user/{user_id}")
    wait_ready(client, base)
    kept = [r for r in client.get(base)["ipRestrictions"] if r["ip"] != "127.0.0.1/32"]
    if len(kept) != len(client.get(base)["ipRestrictions"]):
        client.put(base, ipRestrictions=[{"ip": r["ip"], "description": r["description"]} for r in kept])
        wait_ready(client, base)


def migrate_local_argv(api_server: OvhApiServer, seeded: Seeded, run_dir: Path, *, rate: int) -> list[str]:
    """``migrate --target local`` of the seeded service into one local server, copying ``rate`` keys a second."""
    fleet = service_fleet(api_server, seeded)
    return [
        *("migrate", "--project", seeded.project),
        *("--service", seeded.service_id, "--target", "local", "--shards", "1", "--replicas", "0"),
        *("--endpoint", api_server.url, "--allow-cidr", "127.0.0.1/32"),
        *("--source-ca", str(fleet.tls_files.ca_cert), "--run-dir", str(run_dir), "--max-keys-per-second", str(rate)),
    ]
