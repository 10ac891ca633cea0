"""`migrate --target`: the whole job (inspect → render → plan → apply → copy → verify → report) on the sandbox.

The source is the emulator's Business service (real Valkey behind the OVH API); the target is stood up on this
machine by the Ansible roles. Every artifact of a full run is searched for every password the run used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.pipeline import migrate as pipeline_migrate
from reproducer.pipeline.job import PHASES, JobRequest, run_job
from reproducer.sandbox import ovh_store
from tests.support import cli
from tests.support.ovh import leftovers, migrate_local_argv, ovh_env, service_fleet
from tests.support.runs import confirmed_keys, events
from tests.support.wait import eventually

TARGET_PASSWORD = "target-default-Pa55word-7f3a"
APP_PASSWORD = "target-app-Pa55word-91bc"


@pytest.fixture
def emulator_passwords(monkeypatch) -> list[str]:
    """Every password the emulator hands out during the test (the migration user's included)."""
    handed_out: list[str] = []
    original = ovh_store.new_password

    def recording() -> str:
        handed_out.append(original())
        return handed_out[-1]

    monkeypatch.setattr(ovh_store, "new_password", recording)
    return handed_out


def request_for(api_server, seeded, run_dir: Path, **options) -> JobRequest:
    fleet = service_fleet(api_server, seeded)
    return JobRequest(
        inspect=pipeline_inspect.InspectOptions(
            project=seeded.project, service=seeded.service_id, endpoint=api_server.url, credentials=seeded.credentials
        ),
        target=options.pop("target", "local"),
        run_dir=run_dir,
        allow_cidr="127.0.0.1/32",
        source_ca=fleet.tls_files.ca_cert,
        **options,
    )


def server_file_without_replication_auth(path: Path, text: str) -> str:
    """A target server's own file minus the lines where Valkey must hold a password to replicate.

    A replica authenticates to its primary with ``masterauth`` (``primaryauth`` after a rewrite) and a
    Sentinel with ``auth-pass``, in clear, in the server's configuration: on any host. Those files must be
    closed to other users (Debian's own valkey.conf is 0640); no other line, and no other file, may hold a secret.
    """
    auth = ("masterauth ", "primaryauth ", "sentinel auth-pass ")
    kept = [line for line in text.splitlines() if not line.startswith(auth)]
    if len(kept) != len(text.splitlines()):
        assert path.stat().st_mode & 0o007 == 0, f"{path} holds a replication password and is world-readable"
    return "\n".join(kept)


def test_job_into_a_resharded_local_cluster_proves_every_key_and_leaks_no_secret(
    api_server, seeded, load_source, run_dir, emulator_passwords, capsys
):
    load_source(3000, seed=21)
    request = request_for(
        api_server,
        seeded,
        run_dir,
        shards=3,
        replicas=1,
        passwords={"default": TARGET_PASSWORD, "app": APP_PASSWORD},
    )
    messages: list[str] = []
    result = run_job(request, messages.append)
    assert result.phases_run == list(PHASES)
    assert result.migration is not None and result.migration.verify.ok
    assert result.migration.verify.compared == 3000 and result.migration.copy.total.copied == 3000
    assert result.target is not None and result.target.topology == "cluster" and len(result.target.ports) == 6
    state = json.loads((run_dir / "job.json").read_text())
    assert set(state["phases"]) == set(PHASES) and state["verify"]["ok"] is True
    logged = [(e["phase"], e["event"]) for e in events(run_dir)]
    assert all((p, "phase_finished") in logged for p in PHASES[:-1])
    assert "zero differences" in (run_dir / "report.md").read_text()
    assert leftovers(api_server, seeded) == ([], [])
    assert len(emulator_passwords) == 1, "the job made exactly one source credential: the migration user's"
    secrets = [
        TARGET_PASSWORD,
        APP_PASSWORD,
        *emulator_passwords,
        seeded.app_password,
        seeded.credentials["application_secret"],
        seeded.credentials["consumer_key"],
    ]
    artifacts = [p for p in run_dir.parent.rglob("*") if p.is_file() and not p.name.endswith((".rdb", ".aof"))]
    assert len(artifacts) > 15, "the run directory holds the spec, rendered files, Ansible artifacts and reports"
    for path in artifacts:
        text = path.read_bytes().decode("utf-8", errors="replace")
        if ".valkey-data" in path.parts[-3]:
            text = server_file_without_replication_auth(path, text)
        assert not [s for s in secrets if s in text], f"a secret is written in {path}"
    said = " ".join(messages) + capsys.readouterr().err
    assert not [s for s in secrets if s in said]


def test_dry_run_stops_after_the_plan_and_touches_nothing(api_server, seeded, load_source, run_dir):
    load_source(10, seed=22)
    result = run_job(request_for(api_server, seeded, run_dir, target="aws", shards=3, replicas=1, dry_run=True))
    assert result.phases_run == ["inspect", "render", "plan"]
    assert result.plan is not None and result.plan.counts["create"] > 0
    assert "aws_elasticache_replication_group" in (run_dir / "plan.md").read_text()
    assert json.loads((run_dir / "plan.json").read_text())["format_version"]
    assert not (run_dir / "run.json").exists(), "a dry run asks the source for no access"
    assert leftovers(api_server, seeded) == ([], [])


def test_a_cloud_job_without_every_users_password_applies_nothing_and_asks_the_source_nothing(
    api_server, seeded, run_dir
):
    from reproducer.errors import InputError

    request = request_for(api_server, seeded, run_dir, target="aws", passwords={"default": TARGET_PASSWORD})
    with pytest.raises(InputError, match=r"no password for user\(s\) analytics, app") as error:
        run_job(request)
    assert "REPRODUCER_PASSWORD_ANALYTICS" in error.value.hint
    assert not (run_dir / "rendered" / "terraform" / "terraform.tfstate").exists()
    assert not (run_dir / "run.json").exists() and leftovers(api_server, seeded) == ([], [])


@pytest.mark.fault("SIGKILL of migrate --target local mid-copy, then --resume: phases skipped, access removed")
def test_killed_during_the_copy_the_job_resumes_and_cleans_up(api_server, seeded, load_source, run_dir):
    load_source(15000, seed=23)
    env = ovh_env(seeded, REPRODUCER_PASSWORD_DEFAULT=TARGET_PASSWORD)
    argv = migrate_local_argv(api_server, seeded, run_dir, rate=3000)
    proc = cli.start(*argv, env=env)
    eventually(lambda: confirmed_keys(run_dir) > 0, "the copy phase confirming a first batch", timeout=120, proc=proc)
    proc.kill()
    proc.wait()
    assert "copy" not in json.loads((run_dir / "job.json").read_text())["phases"]
    assert leftovers(api_server, seeded) == ([pipeline_migrate.MIGRATION_USER], ["127.0.0.1/32"])
    resumed = cli.run(*argv, "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "finished by an earlier attempt, skipped" in resumed.stderr and "identical" in resumed.stderr
    assert leftovers(api_server, seeded) == ([], [])
    verify = json.loads((run_dir / "data" / "verify.json").read_text())
    assert verify["ok"] and verify["compared"] == 15000
    assert TARGET_PASSWORD not in resumed.stderr + resumed.stdout


def test_the_events_log_holds_no_url_credentials(tmp_path):
    from reproducer.pipeline.job import RunLog

    log = RunLog(tmp_path / "run", resume=False, progress=lambda _message: None)
    log("cannot reach valkey://mover:hunter2@10.0.0.5:6379?password=hunter2")
    log.event("phase_failed", error="DataError", message="refused for user%3Ahunter2@10.0.0.5")
    text = (tmp_path / "run" / "events.jsonl").read_text()
    assert "hunter2" not in text and "mover" not in text
    assert "valkey://***@10.0.0.5:6379?password=***" in text
