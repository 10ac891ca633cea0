"""The real ovh client against the emulator over HTTP: inspect, auth failures, not found, retries."""

from __future__ import annotations

import time

import pytest

from reproducer.errors import SourceAuthError, SourceNotFoundError, SourceUnavailableError
from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.sandbox.ovh_api import Fault
from reproducer.sandbox.seed import DEMO_ALLOW_LIST, DEMO_USERS
from reproducer.sources.ovh import RetryPolicy


def options(api_server, seeded, *, retry=None, **creds):
    credentials = {**seeded.credentials, **creds}
    return pipeline_inspect.InspectOptions(
        project=seeded.project,
        service=seeded.service_id,
        endpoint=api_server.url,
        credentials=credentials,
        retry=retry or RetryPolicy(sleep=lambda _s: None),
    )


def test_business_service_with_vrack_subnet_allow_list_and_users(api_server, seeded):
    [spec] = pipeline_inspect.inspect(options(api_server, seeded))
    assert spec.source.service_id == seeded.service_id and spec.source.project == seeded.project
    assert (spec.plan.name, spec.plan.flavor, spec.plan.memory_gb) == ("business", "db1-7", 7)
    assert (spec.topology.mode, spec.topology.replicas_per_shard, len(spec.topology.nodes)) == ("sentinel", 1, 2)
    assert sorted(a.cidr for a in spec.allow_list) == sorted(e["ip"] for e in DEMO_ALLOW_LIST)
    assert {u.name for u in spec.users} == {"default", *(u["name"] for u in DEMO_USERS)}
    analytics = next(u for u in spec.users if u.name == "analytics")
    assert analytics.keys == ("metrics:*", "events:*") and analytics.channels == ()
    private = spec.network.private
    assert private.id == "pn-000042_42" and private.vlan_id == 42 and private.vrack == "pn-000042"
    assert private.subnet.cidr == "10.42.0.0/24" and private.subnet.gateway == "10.42.0.1"
    assert {c.valkey_name for c in spec.configuration} >= {"notify-keyspace-events", "timeout"}
    assert spec.backups.regions == ("GRA", "SBG") and spec.backups.retention_days == 3
    assert spec.maintenance_time == "04:00:00" and spec.tls


def test_whole_project_lists_every_service(api_server, seeded):
    specs = pipeline_inspect.inspect(
        pipeline_inspect.InspectOptions(project=seeded.project, endpoint=api_server.url, credentials=seeded.credentials)
    )
    assert [s.source.service_id for s in specs] == [seeded.service_id]


@pytest.mark.fault("OVH API: INVALID_SIGNATURE (wrong secret)", ends="api_error")
def test_wrong_application_secret_gets_invalid_signature(api_server, seeded):
    with pytest.raises(SourceAuthError) as caught:
        pipeline_inspect.inspect(options(api_server, seeded, application_secret="0" * 32))
    assert "signature" in caught.value.message
    assert "OVH_APPLICATION_SECRET" in caught.value.hint and "clock" in caught.value.hint
    assert caught.value.exit_code == 4


def test_unknown_consumer_key_is_named(api_server, seeded):
    with pytest.raises(SourceAuthError, match="does not know this consumer key"):
        pipeline_inspect.inspect(options(api_server, seeded, consumer_key="f" * 32))


def test_call_not_granted_names_the_routes_to_grant(api_server, seeded):
    limited = api_server.store.add_credentials([{"method": "GET", "path": "/auth/*"}])
    with pytest.raises(SourceAuthError) as caught:
        pipeline_inspect.inspect(options(api_server, seeded, **limited))
    assert "not allowed" in caught.value.message and "/cloud/project/*/database/*" in caught.value.hint


def test_unknown_service_gets_a_clear_404(api_server, seeded):
    opts = options(api_server, seeded)
    missing = pipeline_inspect.InspectOptions(**{**opts.__dict__, "service": "00000000-0000-0000-0000-000000000000"})
    with pytest.raises(SourceNotFoundError) as caught:
        pipeline_inspect.inspect(missing)
    assert "does not exist" in caught.value.message and "lists every Valkey service" in caught.value.hint


def test_unknown_project_gets_a_clear_404(api_server, seeded):
    with pytest.raises(SourceNotFoundError, match="not found") as caught:
        pipeline_inspect.inspect(
            pipeline_inspect.InspectOptions(project="ab" * 16, endpoint=api_server.url, credentials=seeded.credentials)
        )
    assert "project id" in caught.value.hint


@pytest.mark.fault("OVH API answers 429 with Retry-After", ends="api_ok")
def test_429_with_retry_after_is_honoured_then_succeeds(api_server, seeded):
    waits: list[float] = []
    api_server.inject(Fault(status=429, retry_after=2, count=2, path="*/advancedConfiguration"))
    [spec] = pipeline_inspect.inspect(options(api_server, seeded, retry=RetryPolicy(sleep=waits.append)))
    assert waits == [2.0, 2.0]
    assert spec.configuration


@pytest.mark.fault("OVH API keeps answering 500", ends="api_error")
def test_persistent_500_stops_after_bounded_retries(api_server, seeded):
    waits: list[float] = []
    api_server.inject(Fault(status=500, count=10, path="*/node"))
    with pytest.raises(SourceUnavailableError, match="after 3 attempts.*HTTP 500"):
        pipeline_inspect.inspect(options(api_server, seeded, retry=RetryPolicy(attempts=3, sleep=waits.append)))
    assert waits == [0.5, 1.0]


def test_missing_consumer_key_is_an_input_error_before_any_call(api_server, seeded):
    from reproducer.errors import InputError

    creds = {k: v for k, v in seeded.credentials.items() if k != "consumer_key"}
    opts = pipeline_inspect.InspectOptions(project=seeded.project, endpoint=api_server.url, credentials=creds)
    with pytest.raises(InputError, match="credentials are incomplete") as caught:
        pipeline_inspect.inspect(opts)
    assert caught.value.exit_code == 2


@pytest.mark.fault("OVH API answers slowly (1 s per call)", ends="api_ok")
def test_slow_answers_still_succeed(api_server, seeded):
    waits: list[float] = []
    api_server.inject(Fault(delay=1.0, count=3, path="*/user*"))
    started = time.monotonic()
    [spec] = pipeline_inspect.inspect(options(api_server, seeded, retry=RetryPolicy(sleep=waits.append)))
    took = time.monotonic() - started
    assert api_server.faults == [], "fewer than 3 calls were answered slowly: the delay was never exercised"
    assert took >= 3.0, f"three answers delayed by 1 s each, yet inspect took {took:.2f} s"
    assert waits == [], "a slow answer is waited for, not retried"
    assert {u.name for u in spec.users} >= {"default", "app", "analytics"}
