"""A copy's counters, and how a worker process relays them (and a verify worker its count) to the parent."""

from __future__ import annotations

from typing import Any

from reproducer.data import copy
from reproducer.data.copy import Stats


class Recorder:
    """A worker's channel as the parent sees it: every payload reported, in order."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def report(self, payload: Any) -> None:
        self.sent.append(payload)


def test_adding_counters_sums_each_and_keeps_the_longest_ttl_wait():
    total = Stats(scanned=3, copied=2, bytes=10, ttl_early_ms=40)
    total.add(Stats(scanned=5, copied=5, expired=1, bytes=7, retries=2, persistent=4, ttl_early_ms=15))
    assert total == Stats(scanned=8, copied=7, expired=1, bytes=17, retries=2, persistent=4, ttl_early_ms=40)
    total.add(Stats(ttl_early_ms=90))
    assert total.ttl_early_ms == 90 and total.scanned == 8


def test_a_worker_sends_its_first_change_at_once_then_gathers_them_until_flushed(monkeypatch):
    monkeypatch.setattr(copy, "RELAY_SECONDS", 3600.0)
    channel = Recorder()
    tracker = copy._RelayedTracker(channel)
    tracker.report(Stats(scanned=100, copied=100))
    assert channel.sent == [("progress", Stats(scanned=100, copied=100))], "the parent sees the worker start"
    for _ in range(50):
        tracker.report(Stats(scanned=100, copied=99, expired=1, ttl_early_ms=3))
    assert len(channel.sent) == 1, "changes within RELAY_SECONDS go in one message"
    tracker.flush()
    tracker.flush()  # nothing left: nothing sent
    assert channel.sent[1:] == [("progress", Stats(scanned=5000, copied=4950, expired=50, ttl_early_ms=3))]


def test_gathering_a_workers_changes_leaves_the_changes_it_was_given_as_they_were(monkeypatch):
    monkeypatch.setattr(copy, "RELAY_SECONDS", 3600.0)
    channel = Recorder()
    tracker = copy._RelayedTracker(channel)
    first, second = Stats(scanned=1), Stats(scanned=2)
    for delta in (first, second, second):
        tracker.report(delta)
    tracker.flush()
    assert (first, second) == (Stats(scanned=1), Stats(scanned=2)), "a caller's Stats was added into"
    assert [payload[1].scanned for payload in channel.sent] == [1, 4]


def test_a_worker_sends_again_once_relay_seconds_have_passed(monkeypatch):
    monkeypatch.setattr(copy, "RELAY_SECONDS", 0.0)
    channel = Recorder()
    tracker = copy._RelayedTracker(channel)
    for count in (1, 2, 3):
        tracker.report(Stats(scanned=count))
    assert [payload[1].scanned for payload in channel.sent] == [1, 2, 3]


def test_a_verify_worker_sends_its_first_count_at_once_then_the_latest_when_flushed():
    from reproducer.data.workers import Throttled

    channel = Recorder()
    latest = Throttled(channel.report, 3600.0)
    for count in (200, 400, 600, 800):
        latest(count)
    assert channel.sent == [200], "the parent sees the worker start; later counts wait"
    latest.flush()
    latest.flush()  # nothing held back: nothing sent
    assert channel.sent == [200, 800]


def test_a_verify_worker_sends_each_count_once_the_interval_has_passed():
    from reproducer.data.workers import Throttled

    channel = Recorder()
    latest = Throttled(channel.report, 0.0)
    for count in (1, 2, 3):
        latest(count)
    assert channel.sent == [1, 2, 3]
