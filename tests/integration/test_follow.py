"""Follow: changes made during and after the copy reach the target; limits are detected."""

from __future__ import annotations

import re
import threading

import pytest

from reproducer.data.copy import CopyOptions
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.follow import Follower, FollowStats
from reproducer.data.verify import VerifyOptions
from reproducer.errors import DataError
from reproducer.pipeline import data as pipeline_data
from reproducer.sandbox.fleet import Fleet, FleetSpec
from reproducer.sandbox.seed import load_dataset
from tests.support.fleets import plain_url, primary_client
from tests.support.runs import confirmed_keys
from tests.support.wait import Background, eventually


class Following:
    """A copy with ``--follow`` running in the background, with the follower's live counters."""

    def __init__(self, source_url: str, target_url: str, run_dir, **copy_kwargs) -> None:
        self.seen: list[FollowStats] = []
        self.follow = pipeline_data.FollowOptions(stop=threading.Event(), progress=self.seen.append)
        self.run_dir = run_dir
        self.copy = Background(
            pipeline_data.copy_data, source_url, target_url, CopyOptions(**copy_kwargs), run_dir, None, self.follow
        )

    def copy_over(self) -> None:
        """Wait until the bulk copy has returned and only the follower is left to carry changes."""
        eventually(self.follow.following.is_set, "the bulk copy to finish", timeout=60)

    def stats(self) -> FollowStats | None:
        """The follower's counters (reported every half second once the copy is over)."""
        return self.seen[-1] if self.seen else None

    def stop(self) -> list[str]:
        """Stop following; the copy's notes."""
        self.follow.stop.set()
        return self.copy.result(60).notes


def follow_counts(notes: list[str]) -> tuple[int, int]:
    """(keys re-copied, keys deleted) from the follower's summary note."""
    [summary] = [n for n in notes if n.startswith("follow:")]
    found = re.search(r"(\d+) key\(s\) re-copied, (\d+) deleted", summary)
    assert found, summary
    return int(found[1]), int(found[2])


@pytest.mark.fault("writes, updates and deletes during the copy (--follow)", ends="verify")
def test_writes_updates_and_deletes_during_the_copy_reach_the_target(tmp_path):
    with Fleet.start(FleetSpec()) as src, Fleet.start(FleetSpec(topology="cluster", shards=3)) as dst:
        src.set_config("notify-keyspace-events", "KA")
        client, target = src.client(src.primary), primary_client(dst)
        load_dataset(client, 4000)
        source_url, target_url = plain_url(src.primary.port), plain_url(dst.servers[0].port)
        running = Following(source_url, target_url, tmp_path, batch=100, max_keys_per_second=4000)
        eventually(lambda: confirmed_keys(tmp_path) > 0, "the copy's first confirmed batch")
        for i in range(200):
            client.set(f"new:{i}", i)
            client.hset(f"user:{i:06d}", "visits", 10_000 + i)
            client.delete(f"session:{i * 6:06d}")
        client.expire("queue:000004", 3600)
        assert not running.follow.following.is_set(), "the copy ended before the changes: they were not made during it"
        running.copy_over()
        assert target.get("after:copy") is None and target.exists("tags:000002")
        client.set("after:copy", "late")
        client.delete("tags:000002")
        # The copy has returned: only the follower can bring these two changes to the target.
        eventually(lambda: target.get("after:copy") == "late", "the follower to copy a key written after the copy")
        eventually(lambda: not target.exists("tags:000002"), "the follower to delete a key deleted after the copy")
        recopied, deleted = follow_counts(running.stop())
        assert recopied >= 402 and deleted >= 201, (recopied, deleted)  # 200 new + 200 updated + 1 expire + 1 late
        report = pipeline_data.verify_data(source_url, target_url, VerifyOptions())
        assert report.ok, report.to_dict()
        assert report.compared == client.dbsize()


def test_notifications_off_are_detected_with_the_fix():
    with Fleet.start(FleetSpec()) as src, Fleet.start(FleetSpec()) as dst:
        follower = Follower(parse_endpoint(plain_url(src.primary.port)), parse_endpoint(plain_url(dst.primary.port)))
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
        target = dst.client(dst.primary)
        running = Following(source_url, plain_url(dst.primary.port), tmp_path)
        running.copy_over()
        with fleet.client(primary, username="app", password=seeded.app_password) as app:
            app.set("written:during:follow", "yes")
        eventually(lambda: target.get("written:during:follow") == "yes", "the follower to copy a key written after")
        running.stop()
    assert set(previous or "") <= set(now), "flags the service already had were dropped"


@pytest.mark.fault("FLUSHALL on the source while following", ends="error")
def test_flushall_during_follow_is_reported(tmp_path):
    with Fleet.start(FleetSpec()) as src, Fleet.start(FleetSpec()) as dst:
        src.set_config("notify-keyspace-events", "KA")
        client = src.client(src.primary)
        client.mset({f"k:{i}": i for i in range(3000)})
        running = Following(plain_url(src.primary.port), plain_url(dst.primary.port), tmp_path)
        running.copy_over()
        client.flushall()
        eventually(lambda: (stats := running.stats()) and stats.warnings, "the follower's size check", timeout=10)
        notes = running.stop()
        assert any("FLUSHALL" in note for note in notes), notes


def test_follow_into_an_older_engine_carries_types_it_must_rebuild(tmp_path):
    """Valkey 8 -> Redis 7.0: a listpack set and a stream changed after the copy are rebuilt, not dropped."""
    with Fleet.start(FleetSpec()) as src, Fleet.start(FleetSpec(engine="redis")) as dst:
        src.set_config("notify-keyspace-events", "KA")
        client, target = src.client(src.primary), dst.client(dst.primary)
        load_dataset(client, 300)
        running = Following(plain_url(src.primary.port), plain_url(dst.primary.port), tmp_path)
        running.copy_over()
        client.sadd("late:set", "a", "b")  # a listpack set: RDB 10 has no such type
        client.xadd("late:stream", {"f": "v"}, id="5-0")
        client.xgroup_create("late:stream", "g", id="0")
        client.hset("late:hash", "f", "v")  # re-stamped
        client.set("late:string", "s")  # GET/SET in the copy, DUMP (re-stamped) in the follower
        eventually(lambda: target.exists("late:set", "late:stream", "late:hash", "late:string") == 4, "the follower")
        eventually(lambda: target.xinfo_groups("late:stream") != [], "the stream's group")
        running.stop()
        report = pipeline_data.verify_data(plain_url(src.primary.port), plain_url(dst.primary.port), VerifyOptions())
        assert report.ok, report.to_dict()
