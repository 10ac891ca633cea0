"""report.html from a real job (OVH emulator source, a local target, a short follow): report.json's numbers, charts."""

from __future__ import annotations

import json
import threading

import pytest

from reproducer.pipeline import inspect as pipeline_inspect
from reproducer.pipeline.data import FollowOptions
from reproducer.pipeline.job import JobRequest, run_job
from reproducer.pipeline.report import follow_lag, keys_per_second, read_timeline
from reproducer.sandbox.seed import ovh_client
from tests.support.htmlpage import parse
from tests.support.ovh import leftovers, service_fleet, service_path, wait_ready

PASSWORD = "report-default-Pa55word-3c1d"
NOTIFY = "redis_notify_keyspace_events"


@pytest.fixture
def notifications_on(api_server, seeded):
    """Keyspace notifications on for the seeded service (the follower needs them), put back afterwards."""
    client, path = ovh_client(api_server, seeded.credentials), service_path(seeded)
    before = client.get(f"{path}/advancedConfiguration")[NOTIFY]
    client.put(f"{path}/advancedConfiguration", **{NOTIFY: "KA"})
    wait_ready(client, path)
    yield
    client.put(f"{path}/advancedConfiguration", **{NOTIFY: before})
    wait_ready(client, path)


def test_the_job_writes_a_report_page_matching_report_json(api_server, seeded, load_source, run_dir, notifications_on):
    load_source(2000, seed=31)
    request = JobRequest(
        inspect=pipeline_inspect.InspectOptions(
            project=seeded.project, service=seeded.service_id, endpoint=api_server.url, credentials=seeded.credentials
        ),
        target="local",
        run_dir=run_dir,
        shards=1,
        replicas=0,
        allow_cidr="127.0.0.1/32",
        source_ca=service_fleet(api_server, seeded).tls_files.ca_cert,
        follow=FollowOptions(stop=threading.Event(), seconds=2.5),
        passwords={"default": PASSWORD},
    )
    result = run_job(request)
    assert result.migration is not None and result.migration.verify.ok
    report = json.loads((run_dir / "report.json").read_text())
    text = (run_dir / "report.html").read_text()
    page = parse(text)
    assert page.errors == [] and page.open == []
    words = " ".join(w.strip() for w in page.text if w.strip())
    copied, source_keys = report["copy"]["copied"], report["copy"]["source_keys"]
    assert copied == source_keys >= 2000 and f"Keys copied: {copied:,} of {source_keys:,}" in words
    assert "Verification: zero differences" in words and f"compared {report['verify']['compared']:,}" in words
    for phase in report["phases"]:
        assert f" {phase} " in f" {words} ", phase
    samples = read_timeline(run_dir)
    assert keys_per_second(samples), "the copy was sampled over time"
    assert follow_lag(samples), "the follower's lag was sampled over time"
    assert len([tag for tag, _ in page.tags if tag == "polyline"]) == 2
    assert PASSWORD not in text and seeded.app_password not in text and "password" not in text.lower()
    assert leftovers(api_server, seeded) == ([], [])
