"""Follow: changes made during and after the copy reach the target; limits are detected."""

from __future__ import annotations

import threading
import time

import pytest

from reproducer.data.copy import CopyOptions
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.follow import Follower
from reproducer.data.verify import VerifyOptions
from reproducer.errors import DataError
from reproducer.pipeline import data as pipeline_data
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.seed import load_dataset


def run_copy_with_follow(source_url, target_url, tmp_path, stop, **copy_kwargs):
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            follow = pipeline_data.FollowOptions(stop=stop)
            outcome["result"] = pipeline_data.copy_data(
                source_url, target_url, CopyOptions(**copy_kwargs), tmp_path, None, follow
            )
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.fault("writes, updates and deletes during the copy (--follow)", ends="verify")
def test_writes_updates_and_deletes_during_the_copy_reach_the_target(tmp_path):
    with Fleet.start(FleetSpec()) as src, Fleet.start(FleetSpec(topology="cluster", shards=3)) as dst:
        src.set_config("notify-keyspace-events", "KA")
        client = src.client(src.primary)
        load_dataset(client, 4000)
        source_url, target_url = f"valkey://127.0.0.1:{src.primary.port}", f"valkey://127.0.0.1:{dst.servers[0].port}"
        stop = threading.Event()
        thread, outcome = run_copy_with_follow(
            source_url, target_url, tmp_path, stop, batch=100, max_keys_per_second=4000
        )
        time.sleep(0.5)
        for i in range(200):
            client.set(f"new:{i}", i)
            client.hset(f"user:{i:06d}", "visits", 10_000 + i)
            client.delete(f"session:{i * 6:06d}")
        client.expire("queue:000004", 3600)
        time.sleep(1.5)  # the copy is over by now; these changes are only seen by the follower
        client.set("after:copy", "late")
        client.delete("tags:000002")
        time.sleep(0.5)
        stop.set()
        thread.join(60)
        assert "error" not in outcome, outcome
        notes = outcome["result"].notes
        assert any(note.startswith("follow:") and "re-copied" in note for note in notes), notes
        report = pipeline_data.verify_data(source_url, target_url, VerifyOptions())
        assert report.ok, report.to_dict()
        assert report.compared == client.dbsize()


def test_notifications_off_are_detected_with_the_fix():
    with Fleet.start(FleetSpec()) as src, Fleet.start(FleetSpec()) as dst:
        follower = Follower(
            parse_endpoint(f"valkey://127.0.0.1:{src.primary.port}"),
            parse_endpoint(f"valkey://127.0.0.1:{dst.primary.port}"),
        )
        with pytest.raises(DataError, match="keyspace notifications are off") as caught:
            follower.start()
        assert "redis_notify_keyspace_events" in caught.value.hint


def test_ovh_source_notifications_are_switched_on_through_the_api(api_server, seeded, tmp_path, monkeypatch):
    for name, value in {
        "OVH_APPLICATION_KEY": seeded.credentials["application_key"],
        "OVH_APPLICATION_SECRET": seeded.credentials["application_secret"],
        "OVH_CONSUMER_KEY": seeded.credentials["consumer_key"],
        "APP_PW": seeded.app_password,
    }.items():
        monkeypatch.setenv(name, value)
    previous, now = pipeline_data.enable_ovh_notifications(seeded.project, seeded.service_id, api_server.url)
    assert set("KA") <= set(now)
    record = api_server.store.find_service(seeded.project, seeded.service_id)
    fleet = api_server.store.fleet(seeded.service_id, record)
    assert set("KA") <= set(fleet.admin(fleet.primary, "CONFIG", "GET", "notify-keyspace-events")[1].upper())
    again = pipeline_data.enable_ovh_notifications(seeded.project, seeded.service_id, api_server.url)
    assert again == (now, now)
    primary = fleet.current_primary()
    source_url = f"valkeys://app@127.0.0.1:{primary.port}?password_env=APP_PW&ca={fleet.tls_files.ca_cert}"
    with Fleet.start(FleetSpec()) as dst:
        target_url = f"valkey://127.0.0.1:{dst.primary.port}"
        stop = threading.Event()
        thread, outcome = run_copy_with_follow(source_url, target_url, tmp_path, stop)
        time.sleep(1.5)
        with fleet.client(primary, username="app", password=seeded.app_password) as app:
            app.set("written:during:follow", "yes")
        time.sleep(0.5)
        stop.set()
        thread.join(60)
        assert "error" not in outcome, outcome
        assert dst.client(dst.primary).get("written:during:follow") == "yes"
    assert set(previous or "") <= set(now), "flags the service already had were dropped"


@pytest.mark.fault("FLUSHALL on the source while following", ends="error")
def test_flushall_during_follow_is_reported(tmp_path):
    with Fleet.start(FleetSpec()) as src, Fleet.start(FleetSpec()) as dst:
        src.set_config("notify-keyspace-events", "KA")
        client = src.client(src.primary)
        client.mset({f"k:{i}": i for i in range(3000)})
        source_url, target_url = f"valkey://127.0.0.1:{src.primary.port}", f"valkey://127.0.0.1:{dst.primary.port}"
        stop = threading.Event()
        thread, outcome = run_copy_with_follow(source_url, target_url, tmp_path, stop)
        time.sleep(1.0)
        client.flushall()
        time.sleep(2.5)
        stop.set()
        thread.join(60)
        assert "error" not in outcome, outcome
        assert any("FLUSHALL" in note for note in outcome["result"].notes), outcome["result"].notes
