"""Cutover and rollback against the sandbox OVH service: a writer keeps writing, no acknowledged write is lost."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace

import pytest
import valkey

from reproducer.errors import DataError
from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.pipeline import migrate as pipeline_migrate
from reproducer.pipeline.cutover import CUTOVER_FILE, SETTINGS_FILE, CutoverOptions
from reproducer.pipeline.data import FollowOptions
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.seed import ovh_client
from tests.support import cli
from tests.support.ovh import leftovers, migrate_local_argv, ovh_env, service_fleet, service_path
from tests.support.wait import eventually

NOTIFY = "redis_notify_keyspace_events"


@pytest.fixture
def users_put_back(api_server, seeded):
    """The seeded users' ACLs and notifications setting as they were, put back after the test whatever it did."""
    client = ovh_client(api_server, seeded.credentials)
    base = service_path(seeded)
    users = {u: client.get(f"{base}/user/{u}") for u in client.get(f"{base}/user")}
    notify = client.get(f"{base}/advancedConfiguration")[NOTIFY]
    yield users, notify
    for user_id, user in users.items():
        body = {k: user[k] for k in ("categories", "commands", "keys", "channels")}
        client.put(f"{base}/user/{user_id}", **body)
    client.put(f"{base}/advancedConfiguration", **{NOTIFY: notify})


def cutover_request(api_server, seeded, target: Fleet, run_dir, options: CutoverOptions | None = None):
    """``migrate --to TARGET --cutover`` of the seeded service (granting 127.0.0.1/32)."""
    inspect = pipeline_inspect.InspectOptions(
        project=seeded.project, service=seeded.service_id, endpoint=api_server.url, credentials=seeded.credentials
    )
    return pipeline_migrate.MigrateRequest(
        inspect=inspect,
        target_url=f"valkey://127.0.0.1:{target.primary.port}",
        run_dir=run_dir,
        allow_cidr="127.0.0.1/32",
        source_ca=service_fleet(api_server, seeded).tls_files.ca_cert,
        follow=FollowOptions(stop=threading.Event()),
        cutover=options or CutoverOptions(max_lag_ms=500, stable_for=0.5),
    )


@dataclass
class Writer:
    """An application writing one new key every 2 ms to the source as user ``app``, then to the target once the
    cutover's connection settings appear; it counts what each side acknowledged and what was refused."""

    source: valkey.Valkey
    target: valkey.Valkey
    settings: object
    acked: list[str] = field(default_factory=list)
    refused: int = 0
    last_source_ack: float = 0.0
    first_target_ack: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Write until stopped (errors other than the freeze's NOPERM fail the test through ``acked``)."""
        index = 0
        while not self.stop.is_set():
            on_target = self.settings.exists()  # type: ignore[attr-defined]
            key = f"writer:{index}"
            try:
                (self.target if on_target else self.source).set(key, str(index))
            except valkey.exceptions.NoPermissionError:
                self.refused += 1
            else:
                self.acked.append(key)
                index += 1
                if on_target:
                    self.first_target_ack = self.first_target_ack or time.monotonic()
                else:
                    self.last_source_ack = time.monotonic()
            time.sleep(0.002)


def app_client(api_server, seeded) -> valkey.Valkey:
    """The application's connection to the source (user ``app``, TLS)."""
    fleet = service_fleet(api_server, seeded)
    primary = fleet.current_primary()
    return valkey.Valkey(
        host="127.0.0.1",
        port=primary.port,
        username="app",
        password=seeded.app_password,
        ssl=True,
        ssl_ca_certs=str(fleet.tls_files.ca_cert),
    )


@pytest.mark.fault("a writer app writing throughout migrate --cutover: no acknowledged write lost, downtime < 5 s")
def test_writes_keep_flowing_through_a_cutover_and_none_acknowledged_is_lost(
    api_server, seeded, load_source, users_put_back, tmp_path
):
    load_source(2000, seed=31)
    _users, notify_before = users_put_back
    run_dir = tmp_path / "run"
    with Fleet.start(FleetSpec()) as target:
        writer = Writer(app_client(api_server, seeded), target.client(target.primary), run_dir / SETTINGS_FILE)
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        try:
            result = pipeline_migrate.migrate_data(cutover_request(api_server, seeded, target, run_dir))
            time.sleep(0.3)  # a few writes on the target after the switch
        finally:
            writer.stop.set()
            thread.join(5)
        assert result.verify.ok and result.cutover is not None
        downtime = result.cutover["write_downtime_seconds"]
        assert 0 < downtime < 5, downtime
        assert writer.first_target_ack is not None and writer.first_target_ack - writer.last_source_ack < 5
        assert writer.refused > 0, "the freeze refused the writes made during the switch"
        stored = target.client(target.primary).mget(writer.acked)
        assert all(v is not None for v in stored), "every write the source or target acknowledged is on the target"
        assert len(writer.acked) > 200
        written = json.loads((run_dir / SETTINGS_FILE).read_text())
        assert written["target"]["url"].startswith("valkey://127.0.0.1:") and "default" in written["frozen_users"]
        assert "app" in written["frozen_users"]
        client = ovh_client(api_server, seeded.credentials)
        assert client.get(f"{service_path(seeded)}/advancedConfiguration")[NOTIFY] == notify_before
        assert leftovers(api_server, seeded) == ([], [])
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        kinds = [e["event"] for e in events]
        assert {"prepared", "lag", "ready", "drained", "switched"} <= set(kinds)
        assert any("behind" in e and "oldest_ms" in e and "events_per_second" in e for e in events)
        with pytest.raises(valkey.exceptions.NoPermissionError):
            app_client(api_server, seeded).set("stale-writer", "1")  # the source stays read-only until rollback
        assert json.loads((run_dir / CUTOVER_FILE).read_text())["step"] == "switched"
        written_files = " ".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
        secrets = (seeded.app_password, seeded.credentials["application_secret"], seeded.credentials["consumer_key"])
        assert not [secret for secret in secrets if secret in written_files]


@pytest.mark.fault("the follower's lag never settles: the cutover gives up, source unfrozen", ends="error")
def test_a_cutover_whose_lag_never_settles_puts_the_source_back(
    api_server, seeded, load_source, users_put_back, tmp_path
):
    load_source(300, seed=32)
    _users, notify_before = users_put_back
    with Fleet.start(FleetSpec()) as target:
        request = cutover_request(api_server, seeded, target, tmp_path / "run")
        request = replace(request, cutover=CutoverOptions(max_lag_ms=-1, ready_timeout=1.0))
        with pytest.raises(DataError, match="lag never stayed low"):
            pipeline_migrate.migrate_data(request)
    client = ovh_client(api_server, seeded.credentials)
    assert client.get(f"{service_path(seeded)}/advancedConfiguration")[NOTIFY] == notify_before
    assert leftovers(api_server, seeded) == ([], [])
    app_client(api_server, seeded).set("writable-again", "1")


def _inspect(api_server, seeded) -> pipeline_inspect.InspectOptions:
    return pipeline_inspect.InspectOptions(
        project=seeded.project, service=seeded.service_id, endpoint=api_server.url, credentials=seeded.credentials
    )


@pytest.mark.fault("rollback after a cutover: the target's writes carried back to the source, unfrozen")
def test_rollback_carries_the_targets_writes_back_unfreezes_and_verifies(
    api_server, seeded, load_source, users_put_back, tmp_path
):
    load_source(500, seed=33)
    run_dir = tmp_path / "run"
    with Fleet.start(FleetSpec()) as target:
        result = pipeline_migrate.migrate_data(cutover_request(api_server, seeded, target, run_dir))
        assert result.cutover is not None
        on_target = target.client(target.primary)
        on_target.set("written-after-cutover", "new")
        on_target.set("user:1", "changed on the target")
        with pytest.raises(valkey.exceptions.NoPermissionError):
            app_client(api_server, seeded).set("before-rollback", "1")

        def late_writes() -> None:  # the application's last writes to the target, during the rollback's copy
            for index in range(60):
                on_target.set(f"late:{index}", index)
                time.sleep(0.02)

        late = threading.Thread(target=late_writes, daemon=True)
        late.start()
        rolled = pipeline_migrate.rollback_data(pipeline_migrate.saved_request(run_dir, _inspect(api_server, seeded)))
        late.join()
        assert rolled.verify.ok and rolled.verify.compared >= 561
        assert on_target.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        assert {"ready", "drained"} <= {e["event"] for e in events if e["phase"] == "rollback"}
        assert {"app", "default"} <= set(rolled.unfrozen)
        app = app_client(api_server, seeded)
        assert app.get("written-after-cutover") == b"new" and app.get("user:1") == b"changed on the target"
        assert all(v is not None for v in app.mget([f"late:{index}" for index in range(60)]))
        app.set("after-rollback", "1")  # the source takes writes again
        assert leftovers(api_server, seeded) == ([], [])
        assert json.loads((run_dir / CUTOVER_FILE).read_text())["frozen"] == {}


def _step(run_dir) -> str | None:
    try:
        return str(json.loads((run_dir / CUTOVER_FILE).read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.fault(
    "SIGKILL of migrate --cutover at each step, then cutover --resume: source put back",
    ends="none: the source keeps every key, unfrozen (read-only once switched), notifications restored",
)
@pytest.mark.parametrize("step", ["prepared", "ready", "frozen", "drained", "switched"])
def test_a_cutover_killed_at_each_step_is_put_back_by_resume(
    api_server, seeded, load_source, users_put_back, tmp_path, step
):
    load_source(300, seed=34)
    _users, notify_before = users_put_back
    run_dir = tmp_path / "run"
    fleet = service_fleet(api_server, seeded)
    with Fleet.start(FleetSpec()) as target:
        argv = [
            *("migrate", "--project", seeded.project, "--service", seeded.service_id),
            *("--to", f"valkey://127.0.0.1:{target.primary.port}", "--endpoint", api_server.url),
            *("--allow-cidr", "127.0.0.1/32", "--source-ca", str(fleet.tls_files.ca_cert), "--run-dir", str(run_dir)),
            *("--cutover", "--max-lag", "0.5", "--stable-for", "1"),
        ]
        proc = cli.start(*argv, env=ovh_env(seeded))
        order = ["prepared", "ready", "frozen", "drained", "verified", "switched"]
        eventually(lambda: _step(run_dir) in order[order.index(step) :], f"cutover at {step}", timeout=60, proc=proc)
        proc.kill()
        proc.wait()
        reached = _step(run_dir)
        resumed = cli.run("cutover", str(run_dir), "--resume", "--endpoint", api_server.url, env=ovh_env(seeded))
        assert resumed.returncode == 0, resumed.stderr
        assert f"reached '{reached}'" in resumed.stderr
    client = ovh_client(api_server, seeded.credentials)
    assert client.get(f"{service_path(seeded)}/advancedConfiguration")[NOTIFY] == notify_before, reached
    assert leftovers(api_server, seeded) == ([], []), reached
    if reached == "switched":  # the application may already use the target: the source stays read-only
        with pytest.raises(valkey.exceptions.NoPermissionError):
            app_client(api_server, seeded).set("after-resume", "1")
    else:
        app_client(api_server, seeded).set("after-resume", "1")


@pytest.mark.bad_input("cutover.json that would grant a user more, or restore another user's ACL, on --resume")
@pytest.mark.parametrize("tamper", ["categories", "username"])
def test_a_tampered_cutover_json_never_changes_an_acl_it_did_not_record(
    api_server, seeded, load_source, users_put_back, tmp_path, tamper
):
    load_source(20, seed=35)
    users, _notify = users_put_back
    [(app_id, app)] = [(i, u) for i, u in users.items() if u["username"] == "analytics"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    recorded = {"username": "analytics", "categories": ["+@all"]}
    if tamper == "categories":
        recorded["categories"] = ["+@all", "~* +@all"]  # not a category rule
    else:
        recorded["username"] = "someone-else"
    state = {
        "format_version": "1.0",
        "step": "frozen",
        "notifications": None,
        "frozen": {app_id: recorded},
        "times": {},
    }
    (run_dir / CUTOVER_FILE).write_text(json.dumps(state))
    pipeline_migrate.save_settings(replace(cutover_request(api_server, seeded, _NoFleet(), run_dir), target_url="x"))
    resumed = cli.run("cutover", str(run_dir), "--resume", env=ovh_env(seeded))
    assert resumed.returncode == 2, resumed.stderr
    assert "Traceback" not in resumed.stderr and "error:" in resumed.stderr and "cutover.json" in resumed.stderr
    client = ovh_client(api_server, seeded.credentials)
    assert client.get(f"{service_path(seeded)}/user/{app_id}")["categories"] == app["categories"]


class _NoFleet:
    """A stand-in target for a request that is only recorded, never run."""

    class primary:
        port = 1


@pytest.mark.bad_input("cutover or rollback on a directory that holds no migration")
def test_cutover_and_rollback_refuse_a_directory_without_a_migration(tmp_path):
    for command in ("cutover", "rollback"):
        done = cli.run(command, str(tmp_path))
        assert done.returncode == 2 and "holds no migration" in done.stderr and "Traceback" not in done.stderr


def test_cutover_of_an_earlier_migration_copies_again_and_switches(
    api_server, seeded, load_source, users_put_back, tmp_path
):
    load_source(400, seed=36)
    run_dir = tmp_path / "run"
    with Fleet.start(FleetSpec()) as target:
        plain = replace(cutover_request(api_server, seeded, target, run_dir), follow=None, cutover=None)
        assert pipeline_migrate.migrate_data(plain).verify.ok
        app_client(api_server, seeded).set("written-between", "1")  # nobody follows now: the cutover copies again
        done = cli.run("cutover", str(run_dir), "--max-lag", "0.5", "--stable-for", "0.5", env=ovh_env(seeded))
        assert done.returncode == 0, done.stderr
        settings = json.loads(done.stdout)
        assert settings == json.loads((run_dir / SETTINGS_FILE).read_text())
        assert 0 < settings["write_downtime_seconds"] < 5 and "identical" in done.stderr
        assert target.client(target.primary).get("written-between") == "1"
    assert leftovers(api_server, seeded) == ([], [])


def test_a_job_that_stands_the_target_up_cuts_over_to_it(api_server, seeded, load_source, users_put_back, run_dir):
    load_source(300, seed=37)
    argv = [*migrate_local_argv(api_server, seeded, run_dir, rate=100_000), "--cutover", "--max-lag", "0.5"]
    done = cli.run(*argv, "--stable-for", "0.5", env=ovh_env(seeded, REPRODUCER_PASSWORD_DEFAULT="job-target-pw-1"))
    assert done.returncode == 0, done.stderr[-3000:]
    settings = json.loads(done.stdout)
    assert settings == json.loads((run_dir / SETTINGS_FILE).read_text())
    assert 0 < settings["write_downtime_seconds"] < 5 and "identical" in done.stderr
    assert "job-target-pw-1" not in done.stdout + done.stderr
    with pytest.raises(valkey.exceptions.NoPermissionError):  # switched: the old side stays read-only
        app_client(api_server, seeded).set("after-the-switch", "1")
    client = ovh_client(api_server, seeded.credentials)
    assert client.get(f"{service_path(seeded)}/advancedConfiguration")[NOTIFY] == users_put_back[1]
    assert leftovers(api_server, seeded) == ([], [])
