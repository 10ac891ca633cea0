"""`migrate --target selfmanaged --inventory`: the sandbox OVH service moves to real hosts over SSH, proven.

Inspect through the OVH API emulator, render, plan, Ansible on three test hosts (primary + replica, three
Sentinels, TLS, ACL users, allow-list), copy through Sentinel over TLS, verify, report; then every artifact of
the run is searched for every password it used.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import valkey
import yaml

from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.pipeline.job import PHASES, JobRequest, run_job
from reproducer.sandbox.seed import load_dataset
from tests.hosts.conftest import selfmanaged_vars, tls_hostvars
from tests.hosts.testhosts import TestHosts
from tests.integration.conftest import api_server, seeded  # noqa: F401 (fixtures)
from tests.support.ovh import leftovers, service_fleet

USERS = ("default", "app", "analytics")


@pytest.mark.timeout(600)
def test_migrate_from_the_sandbox_onto_selfmanaged_hosts(hosts: TestHosts, api_server, seeded, tmp_path: Path):  # noqa: F811
    fleet = service_fleet(api_server, seeded)
    source = fleet.client(fleet.current_primary())
    source.flushall()
    load_dataset(source, 3000, seed=31)
    tls = tmp_path / "tls"
    inventory, variables = tmp_path / "inventory.yml", tmp_path / "vars.yml"
    groups = {"valkey": ["h1", "h2"], "valkey_sentinel": ["h1", "h2", "h3"]}
    inventory.write_text(yaml.safe_dump(hosts.inventory(groups, tls_hostvars(hosts, tls))))
    variables.write_text(yaml.safe_dump(selfmanaged_vars(tls, [f"{hosts.bridge_ip}/32"])))
    passwords = {name: secrets.token_urlsafe(16) for name in USERS}
    run_dir = tmp_path / "run"
    request = JobRequest(
        inspect=pipeline_inspect.InspectOptions(
            project=seeded.project, service=seeded.service_id, endpoint=api_server.url, credentials=seeded.credentials
        ),
        target="selfmanaged",
        run_dir=run_dir,
        inventory=inventory,
        variables=variables,
        target_ca=tls / "ca.crt",
        allow_cidr="127.0.0.1/32",
        source_ca=fleet.tls_files.ca_cert,
        passwords=passwords,
    )
    result = run_job(request)

    assert result.phases_run == list(PHASES)
    assert result.migration is not None and result.migration.verify.ok
    assert result.migration.verify.compared == 3000 == result.migration.copy.total.copied
    replica = valkey.Valkey(
        host=hosts.host("h2").ip, port=6379, ssl=True, ssl_ca_certs=str(tls / "ca.crt"),
        username="default", password=passwords["default"],
    )  # fmt: skip
    assert replica.dbsize() == 3000, "the copy waited for the replica (WAIT) on a replicated target"
    assert json.loads((run_dir / "job.json").read_text())["target"]["topology"] == "sentinel"
    assert leftovers(api_server, seeded) == ([], [])
    used = [*passwords.values(), seeded.credentials["application_secret"], seeded.credentials["consumer_key"]]
    for path in (p for p in run_dir.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert not [s for s in used if s in text], f"a secret is written in {path}"
