"""`migrate` (data) from the sandbox OVH service: temporary access always undone, also after a crash."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reproducer.data.endpoint import parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.errors import InputError, SourceUnavailableError
from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.pipeline import migrate as pipeline_migrate
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.ovh_api import Fault
from reproducer.sandbox.seed import ovh_client
from reproducer.sources.ovh import RetryPolicy
from tests.support import cli
from tests.support.ovh import leftovers, ovh_env, service_fleet, service_path
from tests.support.runs import confirmed_keys
from tests.support.wait import eventually


def migrate_request(api_server, seeded, target: Fleet, run_dir, retry: RetryPolicy | None = None):
    """``migrate --to`` of the seeded service into ``target``, granting 127.0.0.1/32."""
    inspect = pipeline_inspect.InspectOptions(
        project=seeded.project,
        service=seeded.service_id,
        endpoint=api_server.url,
        credentials=seeded.credentials,
        retry=retry,
    )
    return pipeline_migrate.MigrateRequest(
        inspect=inspect,
        target_url=f"valkey://127.0.0.1:{target.primary.port}",
        run_dir=run_dir,
        allow_cidr="127.0.0.1/32",
        source_ca=service_fleet(api_server, seeded).tls_files.ca_cert,
    )


def test_migrate_copies_verifies_and_removes_its_access(api_server, seeded, load_source, tmp_path):
    load_source(800, seed=11)
    with Fleet.start(FleetSpec()) as target:
        request = migrate_request(api_server, seeded, target, tmp_path / "run")
        result = pipeline_migrate.migrate_data(request)
        assert result.verify.ok and result.verify.compared == result.copy.total.copied > 0
        assert leftovers(api_server, seeded) == ([], [])
        run_files = " ".join(p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.is_file())
        assert seeded.app_password not in run_files and "password" not in (tmp_path / "run" / "run.json").read_text()


@pytest.mark.fault("SIGKILL of migrate --to mid-copy, then --resume: temporary access removed", ends="verify")
def test_killed_migration_resumes_and_still_cleans_up(api_server, seeded, load_source, tmp_path):
    load_source(15000, seed=12)
    fleet = service_fleet(api_server, seeded)
    with Fleet.start(FleetSpec()) as target:
        env = ovh_env(seeded)
        run_dir = tmp_path / "run"
        argv = [
            "migrate",
            "--project",
            seeded.project,
            "--service",
            seeded.service_id,
            "--to",
            f"valkey://127.0.0.1:{target.primary.port}",
            "--endpoint",
            api_server.url,
            "--allow-cidr",
            "127.0.0.1/32",
            "--source-ca",
            str(fleet.tls_files.ca_cert),
            "--run-dir",
            str(run_dir),
            "--max-keys-per-second",
            "2000",
        ]
        proc = cli.start(*argv, env=env)
        eventually(lambda: confirmed_keys(run_dir) > 0, "a first batch confirmed", timeout=60, proc=proc)
        proc.kill()
        proc.wait()
        assert leftovers(api_server, seeded) == ([pipeline_migrate.MIGRATION_USER], ["127.0.0.1/32"])
        resumed = cli.run(*argv, "--resume", env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert "identical" in resumed.stderr
        assert leftovers(api_server, seeded) == ([], [])
        source = parse_endpoint(
            f"valkeys://reproducer-sandbox-admin@127.0.0.1:{fleet.current_primary().port}"
            f"?password_env=P&ca={fleet.tls_files.ca_cert}",
            environ={"P": fleet._state.admin_password},
        )
        assert verify(source, parse_endpoint(f"valkey://127.0.0.1:{target.primary.port}"), VerifyOptions()).ok


@pytest.mark.fault("API 500 on */user/* during the clean-up: the other grant is removed, --resume removes the rest")
def test_a_clean_up_the_api_refuses_is_retried_kept_in_run_json_and_undone_by_resume(
    api_server, seeded, load_source, tmp_path
):
    load_source(200, seed=13)
    run_dir = tmp_path / "run"

    def inject_once_granted(message: str) -> None:
        if message.startswith(f"temporary user {pipeline_migrate.MIGRATION_USER} created"):
            api_server.inject(Fault(status=500, count=1000, path="*/user/*"))

    with Fleet.start(FleetSpec()) as target:
        request = migrate_request(api_server, seeded, target, run_dir, RetryPolicy(attempts=3, base_delay=0.05))
        messages: list[str] = []
        with pytest.raises(SourceUnavailableError) as error:
            pipeline_migrate.migrate_data(request, lambda m: (messages.append(m), inject_once_granted(m)))
        assert "could not be removed" in error.value.message and "kept failing after 3 attempts" in error.value.message
        assert f"--resume --run-dir {run_dir}" in error.value.hint and "reproducer migrate" in error.value.hint
        assert sum("retry" in m for m in messages) >= 2, "the clean-up calls were retried with backoff"
        api_server.clear_faults()
        assert leftovers(api_server, seeded) == ([pipeline_migrate.MIGRATION_USER], []), (
            "the allow-list entry still went"
        )
        grants = json.loads((run_dir / "run.json").read_text())["grants"]
        assert list(grants) == ["user"]

        result = pipeline_migrate.migrate_data(replace(request, resume=True))
        assert result.verify.ok
        assert leftovers(api_server, seeded) == ([], [])
        assert json.loads((run_dir / "run.json").read_text())["grants"] == {}


def _app_user_id(api_server, seeded) -> str:
    client = ovh_client(api_server, seeded.credentials)
    base = service_path(seeded)
    [user_id] = [u for u in client.get(f"{base}/user") if client.get(f"{base}/user/{u}")["username"] == "app"]
    return str(user_id)


@pytest.mark.bad_input("run.json naming another user (by name or by id) for --resume to delete")
@pytest.mark.parametrize("field", ["name", "id"])
def test_a_tampered_run_json_never_deletes_a_user_the_migration_did_not_create(
    api_server, seeded, load_source, tmp_path, field
):
    load_source(50, seed=17)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    user = {"name": "app", "id": None} if field == "name" else {"name": pipeline_migrate.MIGRATION_USER}
    user["id"] = _app_user_id(api_server, seeded)
    (run_dir / "run.json").write_text(json.dumps({"format_version": "1.0", "grants": {"user": user}}))
    with Fleet.start(FleetSpec()) as target:
        request = migrate_request(api_server, seeded, target, run_dir)
        with pytest.raises(InputError, match="migration user") as error:
            pipeline_migrate.migrate_data(replace(request, resume=True))
    assert "run.json" in error.value.message and error.value.hint
    assert _app_user_id(api_server, seeded), "the application's user was deleted"
